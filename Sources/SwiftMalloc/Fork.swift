import CShim

// fork() in a multithreaded program (see Malloc.swift for the overview).
//
// shim.c's prepare handler takes stdio's list lock, then calls
// swmcore_fork_lock_all, which takes every allocator lock: the pool registry,
// each slab cache's magazines and cache lock and each memory reserve's lock
// (pools call into the engine, so they come first), then the engine's locks
// in index order (init, each central list, page heap, meta, page map,
// quarantine). No lock is then held mid-update when the address space is
// copied. The forking thread owns the allocator until the parent or child
// handler runs (swm_tls_forking), so other atfork handlers may allocate.
// The parent releases everything; the child resets every lock, since the
// threads that waited on them do not exist there. The child keeps its own
// thread cache; other threads' caches are unreachable there (as their
// threads are) and stay allocated, but their inboxes are closed and emptied
// into the central lists, so blocks the child frees from their spans are
// not sent where no thread will ever take them.

/// Calls `body` on every lock of the pools (but the registry's) and of the
/// engine, in the order fork takes them; the caller holds the registry lock.
private func forEachForkLock(_ body: (UnsafeMutablePointer<swm_lock_t>) -> Void,
                             spin: (UnsafeMutablePointer<UInt32>) -> Void) {
  var c = SlabCaches.registryHead.pointee
  while let cache = c {
    var i: UInt = 0
    while i < UInt(cache.pointee.magazineCount) {
      spin(SlabCaches.spin(SlabCaches.magazine(cache, i)))
      i &+= 1
    }
    body(SlabCaches.lock(UnsafeMutableRawPointer(cache)))
    c = cache.pointee.next
  }
  var m = Mempools.registryHead.pointee
  while let pool = m {
    body(Mempools.lock(pool))
    m = pool.pointee.next
  }
  var i: UInt32 = 0
  while i < swm_lock_count() {
    body(swm_lock_at(i))
    i &+= 1
  }
}

private var registryLock: UnsafeMutablePointer<swm_lock_t> { SlabCaches.lock(SlabCaches.registry) }

@c(swmcore_fork_lock_all)
func swmcore_fork_lock_all() {
  swm_lock(registryLock)
  forEachForkLock({ swm_lock($0) }, spin: { swm_pool_spin_lock($0) })
}

/// In the parent: every lock released, the registry's last (it keeps the
/// list being walked still).
@c(swmcore_fork_unlock_all)
func swmcore_fork_unlock_all() {
  forEachForkLock({ swm_unlock($0) }, spin: { swm_pool_spin_unlock($0) })
  swm_unlock(registryLock)
}

/// In the child: every lock free, whatever its state (its waiters are gone).
@c(swmcore_fork_reset_all)
func swmcore_fork_reset_all() {
  forEachForkLock({ swm_lock_reset($0) }, spin: { swm_pool_spin_reset($0) })
  swm_lock_reset(registryLock)
  Remote.closeOtherInboxes()
  var c: UInt32 = 1
  while c < UInt32(SWM_NUM_CLASSES) {
    Central.list(c).pointee.randoms.left = 0  // the parent draws the same words
    c &+= 1
  }
}
