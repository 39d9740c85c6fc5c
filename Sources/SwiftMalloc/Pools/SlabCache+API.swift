import CShim

// Slab caches: the C entry points (swm_cache_*, swm_slabinfo; declared in
// swiftmalloc.h). Each converts its handle and calls the slab and magazine
// functions of the files beside it. See SlabCache.swift.

// See Malloc.swift for an overview.

extension SlabCaches {
  /// Copies up to nameBytes - 1 bytes of `name` into the (zeroed) buffer;
  /// "cache" when the name is NULL or empty.
  static func copyName(_ name: UnsafePointer<CChar>?, to buffer: UnsafeMutablePointer<CChar>) {
    var n = 0
    if let name {
      while n < Int(nameBytes) - 1 && name[n] != 0 {
        buffer[n] = name[n]
        n &+= 1
      }
    }
    if n == 0 {
      let fallback: StaticString = "cache"
      UnsafeMutableRawPointer(buffer).copyMemory(from: fallback.utf8Start, byteCount: fallback.utf8CodeUnitCount)
    }
  }
}

/// A cache of `size`-byte objects aligned to `align` (0: 16; else a power of
/// two). `ctor` runs on each object when its slab is made, `dtor` when the
/// slab is released. NULL when the parameters are impossible or memory is out.
@c(swm_cache_create)
public func swm_cache_create(_ name: UnsafePointer<CChar>?, _ size: UInt, _ align: UInt,
                             _ ctor: SlabCacheCtor?, _ dtor: SlabCacheCtor?) -> OpaquePointer? {
  let alignment = align == 0 ? 16 : align
  if size == 0 || size > SlabCaches.maxObject || !isPowerOfTwo(alignment) || alignment > SlabCaches.maxObject {
    return nil
  }
  let shape = SlabCaches.geometry(size: size, align: alignment)
  // One allocation: the header, the magazines (each on its own lines), the name.
  let headerBytes = (UInt(MemoryLayout<SlabCacheHeader>.stride) &+ 63) & ~63
  let magazineCount = SlabCaches.magazineCountForCPUs()
  let total = headerBytes &+ UInt(magazineCount) &* SlabCaches.magazineBytes &+ SlabCaches.nameBytes
  guard let memory = Core.allocate(total, alignment: 64) else { return nil }
  memory.initializeMemory(as: UInt8.self, repeating: 0, count: Int(total))
  let nameBuffer = (memory + Int(total &- SlabCaches.nameBytes)).assumingMemoryBound(to: CChar.self)
  SlabCaches.copyName(name, to: nameBuffer)
  let cache = memory.bindMemory(to: SlabCacheHeader.self, capacity: 1)
  cache.initialize(to: SlabCacheHeader(
    lockWord: 0, magazineCount: magazineCount, magic: SlabCaches.cacheMagic, next: nil,
    objectSize: size, stride: shape.stride, align: alignment, slabBytes: shape.slabBytes,
    perSlab: shape.perSlab, firstOffset: shape.firstOffset,
    colourStep: shape.colourStep, colours: shape.colours, nextColour: 0,
    ctor: ctor, dtor: dtor, partial: nil, full: nil, empty: nil,
    slabCount: 0, freeInSlabs: 0, magazines: memory + Int(headerBytes), name: nameBuffer,
    reciprocal: shape.slabBytes <= 1 << 32 ? ((1 << 32) &+ shape.stride &- 1) / shape.stride : 0))
  SlabCaches.register(cache)
  return OpaquePointer(cache)
}

/// An object in its constructed state (as the constructor or its last user
/// left it), or NULL when memory is out.
@c(swm_cache_alloc)
public func swm_cache_alloc(_ handle: OpaquePointer) -> UnsafeMutableRawPointer? {
  let cache = CachePtr(handle)
  let mag = SlabCaches.currentMagazine(cache)
  let magLock = SlabCaches.spin(mag)
  swm_pool_spin_lock(magLock)
  var count = mag.pointee.count
  if count == 0 {
    count = SlabCaches.refill(cache, mag)
    if count == 0 {
      swm_pool_spin_unlock(magLock)
      return nil
    }
  }
  count &-= 1
  let object = SlabCaches.slots(mag)[Int(count)]
  mag.pointee.count = count
  mag.pointee.net &+= 1
  swm_pool_spin_unlock(magLock)
  let s = SlabCaches.slab(of: object, cache)
  let index = SlabCaches.index(UInt(bitPattern: object) &- s.pointee.objects, cache)
  swm_pool_store8(SlabCaches.stateBytes(s, cache) + Int(index), 0)
  return object
}

/// Gives `obj` back to `cache`; aborts when it is not an allocated object of it.
@c(swm_cache_free)
public func swm_cache_free(_ handle: OpaquePointer, _ object: UnsafeMutableRawPointer?) {
  guard let object else { return }
  let cache = CachePtr(handle)
  let (s, index) = SlabCaches.check(cache, object, call: "swm_cache_free()")
  let state = SlabCaches.stateBytes(s, cache) + Int(index)
  if swm_pool_load8(state) != 0 { Diagnostics.doubleFree("swm_cache_free()", object) }
  swm_pool_store8(state, 1)
  let mag = SlabCaches.currentMagazine(cache)
  let magLock = SlabCaches.spin(mag)
  swm_pool_spin_lock(magLock)
  if UInt(mag.pointee.count) == SlabCaches.magazineSlots { SlabCaches.flush(cache, mag) }
  SlabCaches.slots(mag)[Int(mag.pointee.count)] = object
  mag.pointee.count &+= 1
  mag.pointee.net &-= 1
  swm_pool_spin_unlock(magLock)
}

/// Empties the magazines and releases every empty slab (destructor on each
/// of its objects). Returns the bytes given back.
@c(swm_cache_shrink)
public func swm_cache_shrink(_ handle: OpaquePointer) -> UInt {
  let cache = CachePtr(handle)
  SlabCaches.drainMagazines(cache)
  let cacheLock = SlabCaches.lock(UnsafeMutableRawPointer(cache))
  swm_lock(cacheLock)
  let bytes = SlabCaches.releaseEmpty(cache)
  swm_unlock(cacheLock)
  return bytes
}

/// Destroys the cache. Returns how many objects were still allocated; when
/// any were, says so on stderr and keeps their slabs (so those objects stay
/// valid memory) instead of releasing them.
@c(swm_cache_destroy)
public func swm_cache_destroy(_ handle: OpaquePointer?) -> UInt {
  guard let handle else { return 0 }
  let cache = CachePtr(handle)
  if cache.pointee.magic != SlabCaches.cacheMagic {
    Diagnostics.fatal("swm_cache_destroy()", "not a live cache", UnsafeRawPointer(cache))
  }
  SlabCaches.unregister(cache)
  SlabCaches.drainMagazines(cache)
  let cacheLock = SlabCaches.lock(UnsafeMutableRawPointer(cache))
  swm_lock(cacheLock)
  _ = SlabCaches.releaseEmpty(cache)
  let live = cache.pointee.slabCount &* cache.pointee.perSlab &- cache.pointee.freeInSlabs
  if live == 0 {
    cache.pointee.magic = SlabCaches.deadMagic
    swm_unlock(cacheLock)
    Core.free(UnsafeMutableRawPointer(cache))
    return 0
  }
  // Objects are still out: the cache header and their slabs stay (a leak
  // the message reports); a later free into the cache is caught.
  cache.pointee.magic = SlabCaches.deadMagic
  swm_unlock(cacheLock)
  swm_pool_leak_warning(Diagnostics.cString("swm_cache_destroy(): cache "), cache.pointee.name, Int(live),
                        Diagnostics.cString(" destroyed with objects still allocated: "))
  return live
}

/// Writes a /proc/slabinfo-style table of every live cache to `fd`.
@c(swm_slabinfo)
public func swm_slabinfo(_ fd: Int32) {
  swm_pool_slabinfo_line(fd, nil, 0, 0, 0, 0, 0)
  let registryLock = SlabCaches.lock(SlabCaches.registry)
  swm_lock(registryLock)
  var c = SlabCaches.registryHead.pointee
  while let cache = c {
    let cacheLock = SlabCaches.lock(UnsafeMutableRawPointer(cache))
    swm_lock(cacheLock)
    let total = cache.pointee.slabCount &* cache.pointee.perSlab
    swm_unlock(cacheLock)
    let active = min(SlabCaches.activeObjects(cache), total)
    swm_pool_slabinfo_line(fd, cache.pointee.name, Int(active), Int(total), Int(cache.pointee.objectSize),
                           Int(cache.pointee.perSlab), Int(cache.pointee.slabBytes / Core.pageSize))
    c = cache.pointee.next
  }
  swm_unlock(registryLock)
}
