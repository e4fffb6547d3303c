//! Share tickets: one string that says what to fetch (id, name, size, file or folder) and from whom
//! (peer ids and addresses).
//!
//! Format: `shoal1` followed by lowercase base32 (RFC 4648 alphabet, no padding) of a postcard-encoded,
//! versioned enum. Only `a-z` and `2-7` appear, so terminals, chat apps and URLs leave it alone; the
//! version is the enum's variant, so a future format is rejected with a clear message, not misread.

use std::fmt;
use std::str::FromStr;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use shoal_store::ContentId;

const PREFIX: &str = "shoal1";
const MAX_TICKET_CHARS: usize = 16 * 1024;
const MAX_PROVIDERS: usize = 16;
const MAX_ADDRS: usize = 16;

/// A share ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Content id.
    pub id: ContentId,
    /// Suggested name (untrusted: checked before it is used as a file name).
    pub name: String,
    /// Size in bytes (for a folder, of its collection blob).
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
    /// Peers that had it when the ticket was made, with their addresses.
    pub providers: Vec<(PeerId, Vec<Multiaddr>)>,
}

#[derive(Serialize, Deserialize)]
enum Wire {
    V1 { id: [u8; 32], name: String, size: u64, collection: bool, providers: Vec<(Vec<u8>, Vec<Vec<u8>>)> },
}

/// Why a string is not a usable ticket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket at all.
    #[error("not a shoal ticket or content id: tickets start with '{PREFIX}', ids are 64 hex digits")]
    NotATicket,
    /// Damaged (cut off or altered in copying).
    #[error("damaged ticket ({0}): copy the whole ticket again")]
    Damaged(String),
}

impl Ticket {
    fn to_wire(&self) -> Wire {
        Wire::V1 {
            id: self.id.0,
            name: self.name.clone(),
            size: self.size,
            collection: self.collection,
            providers: self
                .providers
                .iter()
                .take(MAX_PROVIDERS)
                .map(|(p, a)| (p.to_bytes(), a.iter().take(MAX_ADDRS).map(|m| m.to_vec()).collect()))
                .collect(),
        }
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = postcard::to_stdvec(&self.to_wire()).map_err(|_| fmt::Error)?;
        write!(f, "{PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    }
}

impl FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if s.len() > MAX_TICKET_CHARS {
            return Err(TicketError::Damaged("too long".into()));
        }
        let lower = s.to_ascii_lowercase();
        let Some(body) = lower.strip_prefix(PREFIX) else {
            return Err(TicketError::NotATicket);
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| TicketError::Damaged(e.to_string()))?;
        let (wire, rest): (Wire, _) =
            postcard::take_from_bytes(&bytes).map_err(|e| TicketError::Damaged(e.to_string()))?;
        if !rest.is_empty() {
            return Err(TicketError::Damaged("trailing bytes".into()));
        }
        let Wire::V1 { id, name, size, collection, providers } = wire;
        if name.len() > 1024 || providers.len() > MAX_PROVIDERS || size > (1 << 50) {
            return Err(TicketError::Damaged("field out of range".into()));
        }
        let mut out = Vec::new();
        for (p, addrs) in providers {
            let peer = PeerId::from_bytes(&p).map_err(|e| TicketError::Damaged(e.to_string()))?;
            if addrs.len() > MAX_ADDRS {
                return Err(TicketError::Damaged("too many addresses".into()));
            }
            let addrs = addrs
                .into_iter()
                .map(|a| Multiaddr::try_from(a).map_err(|e| TicketError::Damaged(e.to_string())))
                .collect::<Result<_, _>>()?;
            out.push((peer, addrs));
        }
        Ok(Ticket { id: ContentId(id), name, size, collection, providers: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ticket {
        Ticket {
            id: ContentId::of(b"hello"),
            name: "hello.txt".into(),
            size: 5,
            collection: false,
            providers: vec![(PeerId::random(), vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()])],
        }
    }

    #[test]
    fn round_trip_and_copy_paste_safe() {
        let t = sample();
        let s = t.to_string();
        assert!(s.starts_with("shoal1"));
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c) || c == '1'));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        // Line breaks and upper case from a chat app are tolerated.
        let mangled = format!("  {}\n{}  ", &s[..20].to_uppercase(), &s[20..]);
        assert_eq!(mangled.parse::<Ticket>().unwrap(), t);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert_eq!("hello".parse::<Ticket>(), Err(TicketError::NotATicket));
        let s = sample().to_string();
        assert!(matches!(s[..s.len() - 7].parse::<Ticket>(), Err(TicketError::Damaged(_))));
        assert!(matches!("shoal1!!!!".parse::<Ticket>(), Err(TicketError::Damaged(_))));
        assert!(matches!("shoal1aaaaaaaa".parse::<Ticket>(), Err(TicketError::Damaged(_))));
    }
}
