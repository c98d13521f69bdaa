//! Frames gathered to go out in one write.

use std::io;

use super::{data_header_for, message_header_for};
use crate::protocol::Message;

/// Frames encoded back to back and written in one call with one flush: a run of small answers
/// (a tree's files, a batch's `put_done`s) costs one syscall and one TLS record, not one each.
pub struct FrameBatch {
    bytes: Vec<u8>,
    peer_max_frame: usize,
}

impl FrameBatch {
    /// An empty batch for a peer that accepts frames of at most `peer_max_frame` bytes.
    pub(super) fn new(peer_max_frame: usize) -> FrameBatch {
        FrameBatch {
            bytes: Vec::new(),
            peer_max_frame,
        }
    }

    /// The frames, back to back.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Adds a control message.
    ///
    /// # Errors
    /// `InvalidInput` if it is larger than the peer accepts.
    pub fn message(&mut self, message: &Message) -> io::Result<()> {
        let body = message.to_json();
        let header = message_header_for(&body, self.peer_max_frame)?;
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(&body);
        Ok(())
    }

    /// Adds a data frame.
    ///
    /// # Errors
    /// `InvalidInput` if `payload` is larger than one frame to the peer may carry.
    pub fn data(&mut self, channel: u8, payload: &[u8]) -> io::Result<()> {
        let header = data_header_for(channel, payload, self.peer_max_frame)?;
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(payload);
        Ok(())
    }
}
