import CShim

// Memory reserves (swm_mempool_*), after the kernel's mempool: a guaranteed
// minimum of `minNr` elements for code that must make progress when memory
// is short. Allocation asks the element allocator (alloc_fn) first and dips
// into the reserve only when it fails; a freed element refills the reserve
// while it holds fewer than minNr and otherwise goes to free_fn. With
// SWM_MEMPOOL_WAIT (or a timeout) an allocation that finds alloc_fn failing
// and the reserve empty sleeps until an element is freed.
//
// The condition variable is a futex on `sequence`: a waiter reads it under
// the lock, drops the lock and sleeps while it is unchanged; every free that
// finds waiters bumps it and wakes them all. The reserve itself is an array
// of element pointers from the core allocator. Thread-safe: one lock.

public typealias MempoolAllocFn = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?
public typealias MempoolFreeFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

struct MempoolHeader {
  var lockWord: UInt32  // a swm_lock_t; must stay first
  var sequence: UInt32  // the futex word; must stay second
  var waiters: UInt32
  var minNr: Int
  var count: Int  // elements in the reserve
  var capacity: Int  // slots in `elements`
  var elements: UnsafeMutablePointer<RawPtr?>
  var allocFn: MempoolAllocFn
  var freeFn: MempoolFreeFn
  var poolData: RawPtr?
  /// Registry links (swm_pool_registry()->mempools, under its lock): fork
  /// takes every reserve's lock (Fork.swift).
  var next: MempoolPtr?
  var prev: MempoolPtr?
}
typealias MempoolPtr = UnsafeMutablePointer<MempoolHeader>

enum Mempools {
  static let wait: Int32 = 1
  static let maxElements = 1 << 28

  @inline(__always)
  static func lock(_ pool: MempoolPtr) -> UnsafeMutablePointer<swm_lock_t> {
    UnsafeMutableRawPointer(pool).assumingMemoryBound(to: swm_lock_t.self)
  }
  @inline(__always)
  static func sequence(_ pool: MempoolPtr) -> UnsafeMutablePointer<UInt32> {
    (UnsafeMutableRawPointer(pool) + 4).assumingMemoryBound(to: UInt32.self)
  }

  static var registryHead: UnsafeMutablePointer<MempoolPtr?> {
    (SlabCaches.registry + 16).assumingMemoryBound(to: MempoolPtr?.self)
  }

  /// Links a new reserve into the registry.
  static func register(_ pool: MempoolPtr) {
    let registryLock = SlabCaches.lock(SlabCaches.registry)
    swm_lock(registryLock)
    pool.pointee.next = registryHead.pointee
    pool.pointee.prev = nil
    registryHead.pointee?.pointee.prev = pool
    registryHead.pointee = pool
    swm_unlock(registryLock)
  }

  static func unregister(_ pool: MempoolPtr) {
    let registryLock = SlabCaches.lock(SlabCaches.registry)
    swm_lock(registryLock)
    if let prev = pool.pointee.prev { prev.pointee.next = pool.pointee.next } else { registryHead.pointee = pool.pointee.next }
    pool.pointee.next?.pointee.prev = pool.pointee.prev
    swm_unlock(registryLock)
  }

  static func slots(_ n: Int) -> UnsafeMutablePointer<RawPtr?>? {
    guard let raw = Core.allocate(UInt(max(n, 1)) &* UInt(MemoryLayout<RawPtr?>.stride)) else { return nil }
    return raw.bindMemory(to: RawPtr?.self, capacity: max(n, 1))
  }

  /// The core of alloc/alloc_timeout: `deadline` is nil for "no waiting",
  /// Int.max for "wait forever", else a swm_pool_now_ms() instant.
  static func allocate(_ pool: MempoolPtr, deadline: Int?) -> RawPtr? {
    while true {
      if let element = pool.pointee.allocFn(pool.pointee.poolData) { return element }
      swm_lock(lock(pool))
      if pool.pointee.count > 0 {
        pool.pointee.count &-= 1
        let element = pool.pointee.elements[pool.pointee.count]
        swm_unlock(lock(pool))
        return element
      }
      guard let deadline else {
        swm_unlock(lock(pool))
        return nil
      }
      var timeout = -1
      if deadline != Int.max {
        let now = swm_pool_now_ms()
        if now >= deadline {
          swm_unlock(lock(pool))
          return nil
        }
        timeout = deadline &- now
      }
      // Sleep until a free bumps the sequence (read under the lock, so a
      // free after the unlock changes it and the wait returns at once).
      let seen = swm_pool_load32(sequence(pool))
      pool.pointee.waiters &+= 1
      swm_unlock(lock(pool))
      swm_pool_futex_wait(sequence(pool), seen, timeout)
      swm_lock(lock(pool))
      pool.pointee.waiters &-= 1
      swm_unlock(lock(pool))
    }
  }

}

// MARK: - C API

/// A reserve of `min_nr` elements made with `alloc_fn(pool_data)` (NULL when
/// they cannot all be made, or min_nr is negative).
@c(swm_mempool_create)
public func swm_mempool_create(_ minNr: Int32, _ allocFn: MempoolAllocFn?, _ freeFn: MempoolFreeFn?,
                               _ poolData: UnsafeMutableRawPointer?) -> OpaquePointer? {
  guard let allocFn, let freeFn, minNr >= 0, Int(minNr) <= Mempools.maxElements else { return nil }
  let n = Int(minNr)
  guard let elements = Mempools.slots(n) else { return nil }
  var made = 0
  while made < n {
    guard let e = allocFn(poolData) else {
      while made > 0 {
        made &-= 1
        freeFn(elements[made], poolData)
      }
      Core.free(UnsafeMutableRawPointer(elements))
      return nil
    }
    elements[made] = e
    made &+= 1
  }
  guard let raw = Core.allocate(UInt(MemoryLayout<MempoolHeader>.stride)) else {
    while made > 0 {
      made &-= 1
      freeFn(elements[made], poolData)
    }
    Core.free(UnsafeMutableRawPointer(elements))
    return nil
  }
  let pool = raw.bindMemory(to: MempoolHeader.self, capacity: 1)
  pool.initialize(to: MempoolHeader(lockWord: 0, sequence: 0, waiters: 0, minNr: n, count: n, capacity: max(n, 1),
                                    elements: elements, allocFn: allocFn, freeFn: freeFn, poolData: poolData,
                                    next: nil, prev: nil))
  Mempools.register(pool)
  return OpaquePointer(pool)
}

/// Elements of `element_size` bytes from the allocator (kmalloc-style).
@c(swm_mempool_create_kmalloc)
public func swm_mempool_create_kmalloc(_ minNr: Int32, _ elementSize: UInt) -> OpaquePointer? {
  swm_mempool_create(minNr, { size in Core.allocate(UInt(bitPattern: size)) },
                     { element, _ in Core.free(element) },
                     UnsafeMutableRawPointer(bitPattern: max(elementSize, 1)))
}

/// Elements from a slab cache.
@c(swm_mempool_create_slab)
public func swm_mempool_create_slab(_ minNr: Int32, _ cache: OpaquePointer?) -> OpaquePointer? {
  guard let cache else { return nil }
  return swm_mempool_create(minNr, { cache in swm_cache_alloc(OpaquePointer(cache!)) },
                            { element, cache in swm_cache_free(OpaquePointer(cache!), element) },
                            UnsafeMutableRawPointer(cache))
}

/// alloc_fn, else the reserve; with SWM_MEMPOOL_WAIT it sleeps for a freed
/// element rather than return NULL.
@c(swm_mempool_alloc)
public func swm_mempool_alloc(_ handle: OpaquePointer, _ flags: Int32) -> UnsafeMutableRawPointer? {
  Mempools.allocate(MempoolPtr(handle), deadline: flags & Mempools.wait != 0 ? Int.max : nil)
}

/// Like SWM_MEMPOOL_WAIT, but NULL after `timeout_ms` milliseconds.
@c(swm_mempool_alloc_timeout)
public func swm_mempool_alloc_timeout(_ handle: OpaquePointer, _ timeoutMs: Int) -> UnsafeMutableRawPointer? {
  let now = swm_pool_now_ms()
  let ms = max(timeoutMs, 0)
  let deadline = ms > Int.max &- now ? Int.max &- 1 : now &+ ms
  return Mempools.allocate(MempoolPtr(handle), deadline: deadline)
}

/// Refills the reserve while it is short of min_nr, else calls free_fn.
@c(swm_mempool_free)
public func swm_mempool_free(_ handle: OpaquePointer, _ element: UnsafeMutableRawPointer?) {
  guard let element else { return }
  let pool = MempoolPtr(handle)
  swm_lock(Mempools.lock(pool))
  let keep = pool.pointee.count < pool.pointee.minNr
  if keep {
    pool.pointee.elements[pool.pointee.count] = element
    pool.pointee.count &+= 1
  }
  let wake = pool.pointee.waiters != 0
  if wake { swm_pool_add32(Mempools.sequence(pool), 1) }
  swm_unlock(Mempools.lock(pool))
  if !keep { pool.pointee.freeFn(element, pool.pointee.poolData) }
  if wake { swm_pool_futex_wake_all(Mempools.sequence(pool)) }
}

/// Sets the reserve to `new_min_nr` elements: 0 on success; -1 when the
/// number is negative, or when alloc_fn failed while growing (min_nr then
/// goes back to its old value and the elements made go to free_fn).
@c(swm_mempool_resize)
public func swm_mempool_resize(_ handle: OpaquePointer, _ newMinNr: Int32) -> Int32 {
  let pool = MempoolPtr(handle)
  if newMinNr < 0 || Int(newMinNr) > Mempools.maxElements { return -1 }
  let target = Int(newMinNr)
  swm_lock(Mempools.lock(pool))
  if target <= pool.pointee.minNr {
    // Shrink: the surplus goes to free_fn (outside the lock).
    var surplus: UnsafeMutablePointer<RawPtr?>? = nil
    var extra = 0
    if pool.pointee.count > target {
      extra = pool.pointee.count &- target
      surplus = Mempools.slots(extra)
      if let surplus {
        (surplus).update(from: pool.pointee.elements + target, count: extra)
        pool.pointee.count = target
      } else {
        extra = 0
      }
    }
    pool.pointee.minNr = target
    swm_unlock(Mempools.lock(pool))
    if let surplus {
      var i = 0
      while i < extra {
        pool.pointee.freeFn(surplus[i], pool.pointee.poolData)
        i &+= 1
      }
      Core.free(UnsafeMutableRawPointer(surplus))
    }
    return 0
  }
  // Grow: a larger array first, then new elements until the reserve is full.
  if target > pool.pointee.capacity {
    swm_unlock(Mempools.lock(pool))
    guard let fresh = Mempools.slots(target) else { return -1 }
    swm_lock(Mempools.lock(pool))
    if target > pool.pointee.capacity {
      fresh.update(from: pool.pointee.elements, count: pool.pointee.count)
      let old = pool.pointee.elements
      pool.pointee.elements = fresh
      pool.pointee.capacity = target
      swm_unlock(Mempools.lock(pool))
      Core.free(UnsafeMutableRawPointer(old))
      swm_lock(Mempools.lock(pool))
    } else {
      swm_unlock(Mempools.lock(pool))
      Core.free(UnsafeMutableRawPointer(fresh))
      swm_lock(Mempools.lock(pool))
    }
  }
  let oldMin = pool.pointee.minNr
  pool.pointee.minNr = target
  while pool.pointee.count < target {
    swm_unlock(Mempools.lock(pool))
    guard let e = pool.pointee.allocFn(pool.pointee.poolData) else {
      _ = swm_mempool_resize(handle, Int32(truncatingIfNeeded: oldMin))
      return -1
    }
    swm_lock(Mempools.lock(pool))
    if pool.pointee.count < pool.pointee.minNr && pool.pointee.count < pool.pointee.capacity {
      pool.pointee.elements[pool.pointee.count] = e
      pool.pointee.count &+= 1
    } else {
      swm_unlock(Mempools.lock(pool))
      pool.pointee.freeFn(e, pool.pointee.poolData)
      swm_lock(Mempools.lock(pool))
    }
  }
  let wake = pool.pointee.waiters != 0
  if wake { swm_pool_add32(Mempools.sequence(pool), 1) }
  swm_unlock(Mempools.lock(pool))
  if wake { swm_pool_futex_wake_all(Mempools.sequence(pool)) }
  return 0
}

/// Frees the reserve (free_fn on each element) and the pool. Every element
/// taken must have been freed back first.
@c(swm_mempool_destroy)
public func swm_mempool_destroy(_ handle: OpaquePointer?) {
  guard let handle else { return }
  let pool = MempoolPtr(handle)
  Mempools.unregister(pool)
  var i = 0
  while i < pool.pointee.count {
    pool.pointee.freeFn(pool.pointee.elements[i], pool.pointee.poolData)
    i &+= 1
  }
  Core.free(UnsafeMutableRawPointer(pool.pointee.elements))
  Core.free(UnsafeMutableRawPointer(pool))
}
