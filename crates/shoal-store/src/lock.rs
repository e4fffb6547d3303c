//! Locking a `std::sync::Mutex` whose holder panicked.
//!
//! Every mutex in Shoal guards state that is consistent between statements (a counter, a map, a cache, the
//! SQLite connection, whose statement a panic rolled back), so the right answer to a poisoned lock is to take
//! the value and go on: one panicking task must not take every later request of the peer down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the guard if a previous holder panicked (see the module docs for why that is safe).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_poisoned_lock_still_gives_its_value() {
        let m = std::sync::Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *super::lock(&m) += 1;
        assert_eq!(*super::lock(&m), 6);
    }

    use std::sync::Mutex;
}
