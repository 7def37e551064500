//! A response's header fields: a list, or for a fetched response the
//! host's block, read into a list only when a handler asks for one.
//!
//! A proxying handler looks up a field or two of what it fetched and
//! builds its own response; reading every fetched field into strings first
//! cost more than the rest of its handler.

use std::cell::OnceCell;

use crate::fields::{self, BadHeader};
use crate::Header;

#[derive(Debug, Clone, Default)]
pub(crate) struct Headers {
    list: Vec<Header>,
    /// The host's block, and the list read from it once asked for; while
    /// it is here, `list` is unused.
    block: Option<(Vec<u8>, OnceCell<Vec<Header>>)>,
}

impl Headers {
    #[cfg_attr(not(feature = "wasi-http"), allow(dead_code))]
    pub fn from_list(list: Vec<Header>) -> Self {
        Headers { list, block: None }
    }

    /// A block the host wrote, as `fields::decode` reads it.
    // The snow boundary's: a `wasi:http` one has no blocks.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub fn from_block(block: Vec<u8>) -> Self {
        Headers {
            list: Vec::new(),
            block: Some((block, OnceCell::new())),
        }
    }

    pub fn get(&self) -> &[Header] {
        match &self.block {
            Some((block, read)) => read.get_or_init(|| fields::decode(block)),
            None => &self.list,
        }
    }

    /// The list, to change: a block is read into it for good.
    pub fn get_mut(&mut self) -> &mut Vec<Header> {
        if let Some((block, mut read)) = self.block.take() {
            self.list = read.take().unwrap_or_else(|| fields::decode(&block));
        }
        &mut self.list
    }

    /// The value of the first field named `name`, compared
    /// case-insensitively; a block is searched without being read.
    pub fn find(&self, name: &str) -> Option<&[u8]> {
        match &self.block {
            Some((block, read)) => match read.get() {
                Some(list) => Header::find(list, name),
                None => fields::find(block, name),
            },
            None => Header::find(&self.list, name),
        }
    }

    #[cfg_attr(not(feature = "wasi-http"), allow(dead_code))]
    pub fn into_list(mut self) -> Vec<Header> {
        std::mem::take(self.get_mut())
    }

    /// The block to hand the host: a block it wrote goes back as it is.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub fn into_block(self) -> Result<Vec<u8>, BadHeader> {
        match self.block {
            Some((block, _)) => Ok(block),
            None => fields::encode(&self.list),
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Headers {}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &[u8] = b"Content-Type: text/plain\nx-two: a\nx-two: b\nx-sp: \t padded \t\n";

    #[test]
    fn a_block_reads_as_the_list_it_holds() {
        let headers = Headers::from_block(BLOCK.to_vec());
        // Looked up without being read, then read, the same answers.
        assert_eq!(headers.find("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(headers.find("X-TWO"), Some(&b"a"[..]));
        assert_eq!(headers.find("x-sp"), Some(&b"padded"[..]));
        assert_eq!(headers.find("missing"), None);
        let list = fields::decode(BLOCK);
        assert_eq!(headers.get(), &list[..]);
        assert_eq!(headers.find("x-two"), Some(&b"a"[..]));
        assert_eq!(headers, Headers::from_list(list.clone()));
        assert_eq!(headers.clone().into_list(), list);
        // Untouched, it goes back to the host as it came.
        assert_eq!(headers.into_block().expect("block"), BLOCK);
    }

    #[test]
    fn a_changed_block_is_sent_as_its_list() {
        let mut headers = Headers::from_block(BLOCK.to_vec());
        headers.get_mut().retain(|h| h.name != "x-two");
        headers.get_mut().push(Header::new("x-new", "1"));
        assert_eq!(headers.find("x-two"), None);
        assert_eq!(
            headers.into_block().expect("block"),
            b"Content-Type: text/plain\nx-sp: padded\nx-new: 1\n"
        );
        // A value a handler added that would break its line is refused.
        let mut bad = Headers::from_block(BLOCK.to_vec());
        bad.get_mut()
            .push(Header::new("x-echo", "a\nset-cookie: 1"));
        assert!(bad.into_block().is_err());
    }
}
