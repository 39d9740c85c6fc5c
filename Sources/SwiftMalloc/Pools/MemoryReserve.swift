import CShim

// Memory reserves (C: swm_mempool_*, Swift: MemoryReserve), after the
// kernel's mempool: a guaranteed minimum of `minNr` elements for code that
// must make progress when memory is short. Allocation asks the element
// allocator (alloc_fn) first and dips into the reserve only when it fails; a
// freed element refills the reserve while it holds fewer than minNr and
// otherwise goes to free_fn. With SWM_MEMPOOL_WAIT (or a timeout) an
// allocation that finds alloc_fn failing and the reserve empty sleeps until
// an element is freed.
//
// The condition variable is a futex on `sequence`: a waiter reads it under
// the lock, drops the lock and sleeps while it is unchanged; every free that
// finds waiters bumps it and wakes them all. The reserve itself is an array
// of element pointers from the core (Core.allocate). Thread-safe: one lock,
// never held while alloc_fn or free_fn runs.
//
// Invariant (under the lock): elements[0..<count] are the reserve, and
// 0 <= count <= capacity.

// See Malloc.swift for an overview.

/// Makes an element from the pool data (nil when it cannot).
public typealias MemoryReserveAllocFn = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?
/// Disposes of an element: (element, pool data).
public typealias MemoryReserveFreeFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void
@available(*, deprecated, renamed: "MemoryReserveAllocFn")
public typealias MempoolAllocFn = MemoryReserveAllocFn
@available(*, deprecated, renamed: "MemoryReserveFreeFn")
public typealias MempoolFreeFn = MemoryReserveFreeFn

struct MemoryReserveHeader {
  var lockWord: UInt32  // a swm_lock_t; must stay first
  var sequence: UInt32  // the futex word; must stay second
  var waiters: UInt32
  var minNr: Int
  var count: Int  // elements in the reserve
  var capacity: Int  // slots in `elements`
  var elements: UnsafeMutablePointer<RawPtr?>
  var allocFn: MemoryReserveAllocFn
  var freeFn: MemoryReserveFreeFn
  var poolData: RawPtr?
  /// Registry links (swm_pool_registry()->mempools, under its lock): fork
  /// takes every reserve's lock (Fork.swift).
  var next: MemoryReservePtr?
  var prev: MemoryReservePtr?
}
typealias MemoryReservePtr = UnsafeMutablePointer<MemoryReserveHeader>

/// The name Fork.swift still uses (registryHead, lock(_:)).
typealias Mempools = MemoryReserves

enum MemoryReserves {
  static let wait: Int32 = 1
  static let maxElements = 1 << 28

  @inline(__always)
  static func lock(_ pool: MemoryReservePtr) -> UnsafeMutablePointer<swm_lock_t> {
    UnsafeMutableRawPointer(pool).assumingMemoryBound(to: swm_lock_t.self)
  }
  @inline(__always)
  static func sequence(_ pool: MemoryReservePtr) -> UnsafeMutablePointer<UInt32> {
    (UnsafeMutableRawPointer(pool) + 4).assumingMemoryBound(to: UInt32.self)
  }

  static var registryHead: UnsafeMutablePointer<MemoryReservePtr?> {
    (SlabCaches.registry + 16).assumingMemoryBound(to: MemoryReservePtr?.self)
  }

  /// Links a new reserve into the registry.
  static func register(_ pool: MemoryReservePtr) {
    let registryLock = SlabCaches.lock(SlabCaches.registry)
    swm_lock(registryLock)
    pool.pointee.next = registryHead.pointee
    pool.pointee.prev = nil
    registryHead.pointee?.pointee.prev = pool
    registryHead.pointee = pool
    swm_unlock(registryLock)
  }

  static func unregister(_ pool: MemoryReservePtr) {
    let registryLock = SlabCaches.lock(SlabCaches.registry)
    swm_lock(registryLock)
    if let prev = pool.pointee.prev { prev.pointee.next = pool.pointee.next } else { registryHead.pointee = pool.pointee.next }
    pool.pointee.next?.pointee.prev = pool.pointee.prev
    swm_unlock(registryLock)
  }

  /// An array of `n` element pointers (room for one when n is 0).
  static func slots(_ n: Int) -> UnsafeMutablePointer<RawPtr?>? {
    guard let raw = Core.allocate(UInt(max(n, 1)) &* UInt(MemoryLayout<RawPtr?>.stride)) else { return nil }
    return raw.bindMemory(to: RawPtr?.self, capacity: max(n, 1))
  }

  /// Passes the first `count` elements of `elements` to `freeFn`, last
  /// first, then frees the array itself.
  static func discard(_ elements: UnsafeMutablePointer<RawPtr?>, count: Int,
                      _ freeFn: MemoryReserveFreeFn, _ poolData: RawPtr?) {
    var i = count
    while i > 0 {
      i &-= 1
      freeFn(elements[i], poolData)
    }
    Core.free(UnsafeMutableRawPointer(elements))
  }

  /// The core of alloc/alloc_timeout: `deadline` is nil for "no waiting",
  /// Int.max for "wait forever", else a swm_pool_now_ms() instant.
  static func allocate(_ pool: MemoryReservePtr, deadline: Int?) -> RawPtr? {
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

// MARK: - resize

extension MemoryReserves {
  /// swm_mempool_resize for a target in 0...maxElements: false when
  /// alloc_fn failed while growing (minNr is then back to its old value and
  /// the elements made went to free_fn), or the array could not grow.
  static func resize(_ pool: MemoryReservePtr, to target: Int) -> Bool {
    swm_lock(lock(pool))
    if target <= pool.pointee.minNr {
      shrink(pool, to: target)
      return true
    }
    // Grow: a larger array first, then new elements until the reserve is full.
    if target > pool.pointee.capacity {
      swm_unlock(lock(pool))
      guard let fresh = slots(target) else { return false }
      swm_lock(lock(pool))
      adopt(pool, fresh, capacity: target)
    }
    return fill(pool, to: target)
  }

  /// Lowers minNr to `target`; the surplus elements go to free_fn outside
  /// the lock (held on entry, released on return).
  static func shrink(_ pool: MemoryReservePtr, to target: Int) {
    var surplus: UnsafeMutablePointer<RawPtr?>? = nil
    var extra = 0
    if pool.pointee.count > target {
      extra = pool.pointee.count &- target
      surplus = slots(extra)
      if let surplus {
        surplus.update(from: pool.pointee.elements + target, count: extra)
        pool.pointee.count = target
      } else {
        extra = 0
      }
    }
    pool.pointee.minNr = target
    swm_unlock(lock(pool))
    if let surplus {
      var i = 0
      while i < extra {
        pool.pointee.freeFn(surplus[i], pool.pointee.poolData)
        i &+= 1
      }
      Core.free(UnsafeMutableRawPointer(surplus))
    }
  }

  /// Makes `fresh` (room for `capacity` elements) the reserve's array unless
  /// a concurrent resize has made one as large meanwhile; the array not kept
  /// is freed outside the lock (held on entry and on return).
  static func adopt(_ pool: MemoryReservePtr, _ fresh: UnsafeMutablePointer<RawPtr?>, capacity: Int) {
    var unused = fresh
    if capacity > pool.pointee.capacity {
      fresh.update(from: pool.pointee.elements, count: pool.pointee.count)
      unused = pool.pointee.elements
      pool.pointee.elements = fresh
      pool.pointee.capacity = capacity
    }
    swm_unlock(lock(pool))
    Core.free(UnsafeMutableRawPointer(unused))
    swm_lock(lock(pool))
  }

  /// Raises minNr to `target` and makes elements with alloc_fn (outside the
  /// lock) until the reserve holds them, then wakes the waiters. The lock is
  /// held on entry and released on return. On an alloc_fn failure minNr goes
  /// back to its old value (its surplus to free_fn) and the result is false.
  static func fill(_ pool: MemoryReservePtr, to target: Int) -> Bool {
    let oldMin = pool.pointee.minNr
    pool.pointee.minNr = target
    while pool.pointee.count < target {
      swm_unlock(lock(pool))
      guard let e = pool.pointee.allocFn(pool.pointee.poolData) else {
        _ = resize(pool, to: oldMin)
        return false
      }
      swm_lock(lock(pool))
      if pool.pointee.count < pool.pointee.minNr && pool.pointee.count < pool.pointee.capacity {
        pool.pointee.elements[pool.pointee.count] = e
        pool.pointee.count &+= 1
      } else {
        swm_unlock(lock(pool))
        pool.pointee.freeFn(e, pool.pointee.poolData)
        swm_lock(lock(pool))
      }
    }
    let wake = pool.pointee.waiters != 0
    if wake { swm_pool_add32(sequence(pool), 1) }
    swm_unlock(lock(pool))
    if wake { swm_pool_futex_wake_all(sequence(pool)) }
    return true
  }
}

// MARK: - C API

/// A reserve of `min_nr` elements made with `alloc_fn(pool_data)` (NULL when
/// they cannot all be made, or min_nr is negative).
@c(swm_mempool_create)
public func swm_mempool_create(_ minNr: Int32, _ allocFn: MemoryReserveAllocFn?, _ freeFn: MemoryReserveFreeFn?,
                               _ poolData: UnsafeMutableRawPointer?) -> OpaquePointer? {
  guard let allocFn, let freeFn, minNr >= 0, Int(minNr) <= MemoryReserves.maxElements else { return nil }
  let n = Int(minNr)
  guard let elements = MemoryReserves.slots(n) else { return nil }
  var made = 0
  while made < n {
    guard let e = allocFn(poolData) else {
      MemoryReserves.discard(elements, count: made, freeFn, poolData)
      return nil
    }
    elements[made] = e
    made &+= 1
  }
  guard let raw = Core.allocate(UInt(MemoryLayout<MemoryReserveHeader>.stride)) else {
    MemoryReserves.discard(elements, count: made, freeFn, poolData)
    return nil
  }
  let pool = raw.bindMemory(to: MemoryReserveHeader.self, capacity: 1)
  pool.initialize(to: MemoryReserveHeader(lockWord: 0, sequence: 0, waiters: 0, minNr: n, count: n, capacity: max(n, 1),
                                          elements: elements, allocFn: allocFn, freeFn: freeFn, poolData: poolData,
                                          next: nil, prev: nil))
  MemoryReserves.register(pool)
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
  MemoryReserves.allocate(MemoryReservePtr(handle), deadline: flags & MemoryReserves.wait != 0 ? Int.max : nil)
}

/// Like SWM_MEMPOOL_WAIT, but NULL after `timeout_ms` milliseconds.
@c(swm_mempool_alloc_timeout)
public func swm_mempool_alloc_timeout(_ handle: OpaquePointer, _ timeoutMs: Int) -> UnsafeMutableRawPointer? {
  let now = swm_pool_now_ms()
  let ms = max(timeoutMs, 0)
  let deadline = ms > Int.max &- now ? Int.max &- 1 : now &+ ms
  return MemoryReserves.allocate(MemoryReservePtr(handle), deadline: deadline)
}

/// Refills the reserve while it is short of min_nr, else calls free_fn.
@c(swm_mempool_free)
public func swm_mempool_free(_ handle: OpaquePointer, _ element: UnsafeMutableRawPointer?) {
  guard let element else { return }
  let pool = MemoryReservePtr(handle)
  swm_lock(MemoryReserves.lock(pool))
  let keep = pool.pointee.count < pool.pointee.minNr
  if keep {
    pool.pointee.elements[pool.pointee.count] = element
    pool.pointee.count &+= 1
  }
  let wake = pool.pointee.waiters != 0
  if wake { swm_pool_add32(MemoryReserves.sequence(pool), 1) }
  swm_unlock(MemoryReserves.lock(pool))
  if !keep { pool.pointee.freeFn(element, pool.pointee.poolData) }
  if wake { swm_pool_futex_wake_all(MemoryReserves.sequence(pool)) }
}

/// Sets the reserve to `new_min_nr` elements: 0 on success; -1 when the
/// number is negative, or when alloc_fn failed while growing (min_nr then
/// goes back to its old value and the elements made go to free_fn).
@c(swm_mempool_resize)
public func swm_mempool_resize(_ handle: OpaquePointer, _ newMinNr: Int32) -> Int32 {
  if newMinNr < 0 || Int(newMinNr) > MemoryReserves.maxElements { return -1 }
  return MemoryReserves.resize(MemoryReservePtr(handle), to: Int(newMinNr)) ? 0 : -1
}

/// Frees the reserve (free_fn on each element) and the pool. Every element
/// taken must have been freed back first.
@c(swm_mempool_destroy)
public func swm_mempool_destroy(_ handle: OpaquePointer?) {
  guard let handle else { return }
  let pool = MemoryReservePtr(handle)
  MemoryReserves.unregister(pool)
  var i = 0
  while i < pool.pointee.count {
    pool.pointee.freeFn(pool.pointee.elements[i], pool.pointee.poolData)
    i &+= 1
  }
  Core.free(UnsafeMutableRawPointer(pool.pointee.elements))
  Core.free(UnsafeMutableRawPointer(pool))
}
