//! Content ids: the BLAKE3 hash of a blob's bytes, printed as 64 lowercase hex digits (what `b3sum` prints).

use std::fmt;
use std::str::FromStr;

/// The id of a blob: BLAKE3 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// As a BLAKE3 hash.
    pub fn hash(&self) -> blake3::Hash {
        blake3::Hash::from_bytes(self.0)
    }

    /// A short form for logs (first 12 hex digits).
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.short())
    }
}

/// A string that is not a content id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a content id: expected 64 hex digits (the output of b3sum), got {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for ContentId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s.chars().take(80).collect();
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).map_err(|_| ParseIdError(shown.clone()))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ParseIdError(shown))?;
        Ok(Self(arr))
    }
}

impl serde::Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_string()) } else { self.0.serialize(s) }
    }
}

impl<'de> serde::Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(ContentId)
        }
    }
}

impl utoipa::PartialSchema for ContentId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .description(Some(
                "Content id: the BLAKE3 hash of the bytes in 64 lowercase hex digits (what b3sum prints)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ContentId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_b3sum_of_empty_input() {
        // `b3sum /dev/null`
        let id = ContentId::of(b"");
        assert_eq!(id.to_string(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        assert_eq!(id.to_string().parse::<ContentId>(), Ok(id));
        assert!("xyz".parse::<ContentId>().is_err());
        assert!("af13".parse::<ContentId>().is_err());
    }
}
