import CShim

// fork() from a multithreaded program: the prepare handler takes every
// allocator lock in index order (init, each central list, page heap, meta,
// page map), so no lock is held mid-update when the address space is copied;
// the parent releases them and the child resets them. The child keeps its
// own thread cache; other threads' caches are unreachable there (as their
// threads are) and stay allocated.

@c(swmcore_fork_prepare)
func swmcore_fork_prepare() {
  var i: UInt32 = 0
  while i < swm_lock_count() {
    swm_lock(swm_lock_at(i))
    i &+= 1
  }
}

@c(swmcore_fork_parent)
func swmcore_fork_parent() {
  var i = swm_lock_count()
  while i > 0 {
    i &-= 1
    swm_unlock(swm_lock_at(i))
  }
}

@c(swmcore_fork_child)
func swmcore_fork_child() {
  var i: UInt32 = 0
  while i < swm_lock_count() {
    swm_lock_reset(swm_lock_at(i))
    i &+= 1
  }
}
