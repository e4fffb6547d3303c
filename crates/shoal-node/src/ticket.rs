//! Share tickets: one string that says what to fetch (id, name, size, file or folder) and from whom
//! (peer ids and addresses).
//!
//! Format: `shoal1` followed by lowercase base32 (RFC 4648 alphabet, no padding) of a postcard-encoded,
//! versioned enum. Only `a-z` and `2-7` appear, so terminals, chat apps and URLs leave it alone; the
//! version is the enum's variant, so a future format is rejected with a clear message, not misread.
//!
//! Version 2 (what this build writes) ends with a checksum: the first 4 bytes of the BLAKE3 hash of
//! everything before it. A character changed in copying then reads as "damaged ticket", never as another
//! content id (version 1 tickets, still read, had none: one wrong character silently named other content,
//! and the user was told "no provider found").

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

/// What a ticket says, as encoded (postcard encodes a newtype variant exactly as the struct variant V1
/// was, so V1 tickets written before V2 existed decode unchanged).
#[derive(Serialize, Deserialize)]
struct Fields {
    id: [u8; 32],
    name: String,
    size: u64,
    collection: bool,
    providers: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

#[derive(Serialize, Deserialize)]
enum Wire {
    V1(Fields),
    /// As `V1`, followed by [`CHECKSUM`] bytes.
    V2(Fields),
}

/// Bytes of checksum after a version 2 ticket.
const CHECKSUM: usize = 4;

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM] {
    let h = blake3::hash(bytes);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&h.as_bytes()[..CHECKSUM]);
    out
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
        Wire::V2(Fields {
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
        })
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = postcard::to_stdvec(&self.to_wire()).map_err(|_| fmt::Error)?;
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
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
        let Fields { id, name, size, collection, providers } = match wire {
            Wire::V1(f) if rest.is_empty() => f,
            Wire::V2(f) if rest.len() == CHECKSUM => {
                if checksum(&bytes[..bytes.len() - CHECKSUM]) != rest {
                    return Err(TicketError::Damaged("its checksum does not match".into()));
                }
                f
            }
            _ => return Err(TicketError::Damaged("trailing bytes".into())),
        };
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

    #[test]
    fn any_one_character_changed_is_a_damaged_ticket_never_another_id() {
        let t = sample();
        let s = t.to_string();
        let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        for at in 6..s.len() {
            for c in alphabet.chars().step_by(5) {
                if s[at..].starts_with(c) {
                    continue;
                }
                let typo = format!("{}{c}{}", &s[..at], &s[at + 1..]);
                match typo.parse::<Ticket>() {
                    Err(TicketError::Damaged(_)) => {}
                    other => panic!("a typo at {at} gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn version_1_tickets_without_a_checksum_are_still_read() {
        // Written by the build before version 2 existed.
        let old = "shoal1advi6fr5wodifes6isi4lzmnjozva3xyyfhlpcug5eemkyskm4qa6climvwgy3zoor4hibiaaetaajaiaejcb2sknrr6fhcsbk7pkud3cmxml6mvi53k5pv6pojeehxknekenurmaeeai7yaaaaqmd5b";
        let t: Ticket = old.parse().unwrap();
        assert_eq!((t.id, t.name.as_str(), t.size, t.collection), (ContentId::of(b"hello"), "hello.txt", 5, false));
        assert_eq!(t.providers[0].0.to_string(), "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7");
        assert_eq!(t.providers[0].1, vec!["/ip4/127.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()]);
        // What this build writes for it is version 2, and differs.
        assert_ne!(t.to_string(), old);
    }
}
