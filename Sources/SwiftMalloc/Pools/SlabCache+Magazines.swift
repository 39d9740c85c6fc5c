import CShim

// Slab caches: the per-CPU magazines, the fast path of swm_cache_alloc and
// swm_cache_free. A cache's magazines follow its header, `magazineBytes`
// apart: a Magazine, then `magazineSlots` object pointers (a stack). Each
// has its own spinlock; under it, refill and flush take the cache lock
// (lock order: a magazine, then the cache). See SlabCache.swift.

// See Malloc.swift for an overview.

extension SlabCaches {
  /// The magazines a new cache gets: a power of two (CPU numbers are
  /// masked) covering the CPUs the process may run on, at most maxMagazines.
  static func magazineCountForCPUs() -> UInt32 {
    var count: UInt32 = 1
    let cpus = min(swm_pool_cpu_span(), maxMagazines)
    while count < cpus { count &<<= 1 }
    return count
  }

  @inline(__always)
  static func spin(_ mag: MagazinePtr) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(mag).assumingMemoryBound(to: UInt32.self)
  }

  @inline(__always)
  static func magazine(_ cache: CachePtr, _ i: UInt) -> MagazinePtr {
    (cache.pointee.magazines + Int(i &* magazineBytes)).assumingMemoryBound(to: Magazine.self)
  }

  @inline(__always)
  static func slots(_ mag: MagazinePtr) -> UnsafeMutablePointer<RawPtr> {
    (UnsafeMutableRawPointer(mag) + MemoryLayout<Magazine>.stride).assumingMemoryBound(to: RawPtr.self)
  }

  /// The magazine of the CPU the calling thread runs on.
  @inline(__always)
  static func currentMagazine(_ cache: CachePtr) -> MagazinePtr {
    magazine(cache, UInt(swm_pool_cpu() & (cache.pointee.magazineCount &- 1)))
  }

  /// Fills an empty magazine with up to `batch` objects from the slabs
  /// (magazine lock held); returns how many it got (0: memory is out).
  @inline(never)
  static func refill(_ cache: CachePtr, _ mag: MagazinePtr) -> UInt32 {
    swm_lock(lock(UnsafeMutableRawPointer(cache)))
    let got = takeFromSlabs(cache, slots(mag), want: batch)
    swm_unlock(lock(UnsafeMutableRawPointer(cache)))
    return UInt32(truncatingIfNeeded: got)
  }

  /// Gives `batch` objects of a full magazine back to the slabs (magazine
  /// lock held).
  @inline(never)
  static func flush(_ cache: CachePtr, _ mag: MagazinePtr) {
    // The oldest `batch` objects go back; the recent (cache-warm) ones stay.
    let s = slots(mag)
    swm_lock(lock(UnsafeMutableRawPointer(cache)))
    returnToSlabs(cache, s, count: batch)
    swm_unlock(lock(UnsafeMutableRawPointer(cache)))
    let keep = Int(mag.pointee.count) &- Int(batch)
    var i = 0
    while i < keep {
      s[i] = s[i &+ Int(batch)]
      i &+= 1
    }
    mag.pointee.count = UInt32(truncatingIfNeeded: keep)
  }

  /// Empties every magazine into the slabs.
  static func drainMagazines(_ cache: CachePtr) {
    var i: UInt = 0
    while i < UInt(cache.pointee.magazineCount) {
      let mag = magazine(cache, i)
      swm_pool_spin_lock(spin(mag))
      if mag.pointee.count > 0 {
        swm_lock(lock(UnsafeMutableRawPointer(cache)))
        returnToSlabs(cache, slots(mag), count: UInt(mag.pointee.count))
        swm_unlock(lock(UnsafeMutableRawPointer(cache)))
        mag.pointee.count = 0
      }
      swm_pool_spin_unlock(spin(mag))
      i &+= 1
    }
  }

  /// The objects allocated (allocations minus frees over every magazine),
  /// read without the magazine locks: a snapshot for swm_slabinfo.
  static func activeObjects(_ cache: CachePtr) -> UInt {
    var net = 0
    var i: UInt = 0
    while i < UInt(cache.pointee.magazineCount) {
      net &+= magazine(cache, i).pointee.net
      i &+= 1
    }
    return net > 0 ? UInt(net) : 0
  }
}
