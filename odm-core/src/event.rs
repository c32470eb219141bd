//! Events a socket's owner must hear about, and the queue they wait in. The queue has an eventfd
//! that is readable exactly while the queue is not empty, so a C or Python event loop can poll it.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::clock::Timestamp;
use crate::stack::LeaseId;
use crate::{AddressType, Error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The address is deprecated: usable by its sockets until `deadline`, when it is gone.
    /// After a move, `replacement` is the address to migrate to.
    AddressDeprecated,
    /// The address is gone (a move, or its lifetime ended); the socket must get a new one.
    AddressLost,
    /// A non-blocking setsc() finished: `address` on success, `error` otherwise.
    RequestComplete,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::AddressDeprecated => "address-deprecated",
            EventKind::AddressLost => "address-lost",
            EventKind::RequestComplete => "request-complete",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    pub lease: LeaseId,
    /// The socket the lease belongs to, when it was requested by fd.
    pub fd: Option<RawFd>,
    pub address_type: AddressType,
    pub address: Option<IpAddr>,
    pub deadline: Option<Timestamp>,
    pub replacement: Option<IpAddr>,
    pub error: Option<Error>,
}

/// A FIFO of events with a pollable fd.
pub struct EventQueue {
    queue: Mutex<VecDeque<Event>>,
    fd: OwnedFd,
}

impl EventQueue {
    pub fn new() -> io::Result<EventQueue> {
        // SAFETY: eventfd returns a new fd we own, or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid fd.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(EventQueue {
            queue: Mutex::new(VecDeque::new()),
            fd,
        })
    }

    /// Appends events; the fd becomes readable if the queue was empty.
    pub(crate) fn push_all(&self, events: impl IntoIterator<Item = Event>) {
        let mut q = self.queue.lock().unwrap();
        let was_empty = q.is_empty();
        q.extend(events);
        if was_empty && !q.is_empty() {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a u64 to our eventfd. It cannot block or overflow:
            // the counter is reset to 0 each time the queue drains.
            unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
        }
    }

    /// The next event, if any; the fd stops being readable when the queue empties.
    pub fn try_next(&self) -> Option<Event> {
        let mut q = self.queue.lock().unwrap();
        let ev = q.pop_front();
        if ev.is_some() && q.is_empty() {
            let mut counter: u64 = 0;
            // SAFETY: reads 8 bytes into a u64 from our non-blocking eventfd.
            unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut counter).cast(), 8) };
        }
        ev
    }

    pub fn len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AsFd for EventQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Drains the queue: `for ev in stack.events() { ... }` stops when it is empty.
impl Iterator for &EventQueue {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.try_next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(q: &EventQueue) -> bool {
        let mut pfd = libc::pollfd {
            fd: q.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    }

    fn event(n: u64) -> Event {
        Event {
            kind: EventKind::AddressLost,
            lease: LeaseId::from_raw(n),
            fd: None,
            address_type: AddressType::Nonpersistent,
            address: None,
            deadline: None,
            replacement: None,
            error: None,
        }
    }

    #[test]
    fn the_fd_is_readable_exactly_while_events_wait() {
        let q = EventQueue::new().unwrap();
        assert!(!readable(&q));
        q.push_all([event(1), event(2)]);
        assert!(readable(&q));
        q.push_all([event(3)]);
        assert_eq!(q.try_next().unwrap().lease, LeaseId::from_raw(1));
        assert!(readable(&q));
        assert_eq!(
            (&q).map(|e| e.lease).collect::<Vec<_>>(),
            [LeaseId::from_raw(2), LeaseId::from_raw(3)]
        );
        assert!(!readable(&q));
        assert!(q.try_next().is_none());
    }
}
