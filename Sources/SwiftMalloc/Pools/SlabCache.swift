import CShim

// Slab caches (swm_cache_*): fixed-size objects kept in their constructed
// state, after the kernel's kmem_cache.
//
// Slabs. A slab is `slabBytes` bytes (a power of two, at least 16 KiB, enough
// for 8 objects) from the core allocator, aligned to its own size, so the
// slab of an object is `object & ~(slabBytes - 1)`. It begins with a
// SlabHeader, then two arrays indexed by object number:
//   freeStack: UInt32[perSlab]  the numbers of the free objects (a stack);
//   state:     UInt8[perSlab]   1 = free (in the slab or in a magazine), 0 = allocated;
// then the colour padding, then the objects. Free-object tracking lives
// entirely out of line, so a freed object keeps every byte of its constructed
// state: the constructor runs once per object when its slab is created, the
// destructor once when the slab is released (swm_cache_shrink/destroy).
// Colouring: successive slabs start their first object at successive
// multiples of max(64, align) within the slack the slab has left over, so
// objects at the same index in different slabs fall on different cache lines.
//
// Per-CPU magazines (the fast path). Each cache has one magazine per CPU the
// process may run on (up to 64), each a stack of up to 126 free object
// pointers behind its own spinlock; a thread uses the magazine of the CPU it
// runs on (read from glibc's rseq area: one load). An allocation or free is
// one atomic exchange on a lock line that stays in that CPU's cache plus a
// plain store to release it, with no shared counter. An empty
// magazine takes `batch` objects from the slabs under the cache lock; a full
// one gives `batch` back. We chose locked per-CPU magazines over per-thread
// (__thread) ones because a thread-private magazine must be flushed when its
// thread exits and is invisible to swm_cache_shrink/destroy; these are
// always reachable. Lock order: registry, then a magazine, then the cache.
//
// Checks. swm_cache_free finds the slab by masking, confirms with the core
// (Core.ownsPageBlock) that the address starts one of its page blocks before
// reading the slab header, and requires the header to name this cache:
// otherwise "object from another cache". The object's state byte must be 0 (allocated) and becomes
// 1: if it was 1 already, the object was freed twice. (Plain byte loads and
// stores: two threads racing to free the same object at the same instant
// may go unreported; every sequential double free is caught.)

public typealias CacheCtor = @convention(c) (UnsafeMutableRawPointer?) -> Void

struct SlabHeader {
  var magic: UInt
  var cache: UnsafeMutablePointer<SlabCacheHeader>
  var next: UnsafeMutablePointer<SlabHeader>?
  var prev: UnsafeMutablePointer<SlabHeader>?
  var objects: UInt  // address of object 0
  var freeCount: UInt32  // entries on the free stack
  var list: UInt32  // SlabCaches.partialList / fullList / emptyList
}
typealias SlabPtr = UnsafeMutablePointer<SlabHeader>

struct SlabCacheHeader {
  var lockWord: UInt32  // a swm_lock_t; must stay first
  var magazineCount: UInt32
  var magic: UInt
  var next: UnsafeMutablePointer<SlabCacheHeader>?  // registry link
  var objectSize: UInt  // as requested
  var stride: UInt  // objectSize rounded up to align
  var align: UInt
  var slabBytes: UInt
  var perSlab: UInt
  var firstOffset: UInt  // offset of object 0 at colour 0
  var colourStep: UInt
  var colours: UInt
  var nextColour: UInt
  var ctor: CacheCtor?
  var dtor: CacheCtor?
  var partial: SlabPtr?
  var full: SlabPtr?
  var empty: SlabPtr?
  var slabCount: UInt
  var freeInSlabs: UInt
  var magazines: RawPtr
  var name: UnsafeMutablePointer<CChar>
  var reciprocal: UInt  // ceil(2^32 / stride): offset / stride as a multiply (0: divide)
}
typealias CachePtr = UnsafeMutablePointer<SlabCacheHeader>

/// One magazine (its slots follow it).
struct Magazine {
  var lockWord: UInt32  // a swm_pool_spin_lock word; must stay first
  var count: UInt32
  var net: Int  // allocations minus frees through this magazine
}
typealias MagazinePtr = UnsafeMutablePointer<Magazine>

enum SlabCaches {
  static let cacheMagic: UInt = 0x5357_4D43_4143_4845  // "SWMCACHE"
  static let deadMagic: UInt = 0x5357_4D44_4541_4421
  static let slabMagic: UInt = 0x5357_4D53_4C41_4221
  static let partialList: UInt32 = 0
  static let fullList: UInt32 = 1
  static let emptyList: UInt32 = 2
  static let magazineSlots: UInt = 126
  static let batch: UInt = 63
  static let magazineBytes: UInt = 1024  // header + 126 slots, 16 cache lines
  static let maxMagazines: UInt32 = 64
  static let nameBytes: UInt = 32
  static let minSlab: UInt = 16384
  static let maxObject: UInt = 1 << 30
  static var slabHeaderBytes: UInt { UInt(MemoryLayout<SlabHeader>.stride) }

  @inline(__always)
  static func lock(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<swm_lock_t> {
    raw.assumingMemoryBound(to: swm_lock_t.self)
  }

  @inline(__always)
  static func spin(_ mag: MagazinePtr) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(mag).assumingMemoryBound(to: UInt32.self)
  }

  @inline(__always)
  static func freeStack(_ slab: SlabPtr) -> UnsafeMutablePointer<UInt32> {
    (UnsafeMutableRawPointer(slab) + Int(slabHeaderBytes)).assumingMemoryBound(to: UInt32.self)
  }

  @inline(__always)
  static func stateBytes(_ slab: SlabPtr, _ cache: CachePtr) -> UnsafeMutablePointer<UInt8> {
    (UnsafeMutableRawPointer(slab) + Int(slabHeaderBytes &+ 4 &* cache.pointee.perSlab)).assumingMemoryBound(to: UInt8.self)
  }

  @inline(__always)
  static func magazine(_ cache: CachePtr, _ i: UInt) -> MagazinePtr {
    (cache.pointee.magazines + Int(i &* magazineBytes)).assumingMemoryBound(to: Magazine.self)
  }

  @inline(__always)
  static func slots(_ mag: MagazinePtr) -> UnsafeMutablePointer<RawPtr> {
    (UnsafeMutableRawPointer(mag) + MemoryLayout<Magazine>.stride).assumingMemoryBound(to: RawPtr.self)
  }

  @inline(__always)
  static func currentMagazine(_ cache: CachePtr) -> MagazinePtr {
    magazine(cache, UInt(swm_pool_cpu() & (cache.pointee.magazineCount &- 1)))
  }

  /// Objects per slab of `slabBytes`, and the offset of object 0.
  static func layout(slabBytes: UInt, stride: UInt, align: UInt) -> (count: UInt, firstOffset: UInt) {
    let header = slabHeaderBytes
    var n = (slabBytes &- header) / (stride &+ 5)
    while n > 0 {
      let first = (header &+ 5 &* n &+ align &- 1) & ~(align &- 1)
      if first &+ n &* stride <= slabBytes { return (n, first) }
      n &-= 1
    }
    return (0, slabBytes)
  }

  // MARK: slab lists (cache lock held)

  static func listHead(_ cache: CachePtr, _ list: UInt32) -> UnsafeMutablePointer<SlabPtr?> {
    switch list {
    case partialList: return withUnsafeMutablePointer(to: &cache.pointee.partial) { $0 }
    case fullList: return withUnsafeMutablePointer(to: &cache.pointee.full) { $0 }
    default: return withUnsafeMutablePointer(to: &cache.pointee.empty) { $0 }
    }
  }

  static func unlink(_ cache: CachePtr, _ slab: SlabPtr) {
    if let prev = slab.pointee.prev {
      prev.pointee.next = slab.pointee.next
    } else {
      listHead(cache, slab.pointee.list).pointee = slab.pointee.next
    }
    slab.pointee.next?.pointee.prev = slab.pointee.prev
    slab.pointee.next = nil
    slab.pointee.prev = nil
  }

  static func push(_ cache: CachePtr, _ slab: SlabPtr, on list: UInt32) {
    let head = listHead(cache, list)
    slab.pointee.list = list
    slab.pointee.prev = nil
    slab.pointee.next = head.pointee
    head.pointee?.pointee.prev = slab
    head.pointee = slab
  }

  static func move(_ cache: CachePtr, _ slab: SlabPtr, to list: UInt32) {
    if slab.pointee.list == list { return }
    unlink(cache, slab)
    push(cache, slab, on: list)
  }

  /// A new slab, every object constructed, on the empty list (cache lock held).
  static func grow(_ cache: CachePtr) -> SlabPtr? {
    let bytes = cache.pointee.slabBytes
    guard let memory = Core.allocate(bytes, alignment: bytes) else { return nil }
    let slab = memory.bindMemory(to: SlabHeader.self, capacity: 1)
    let colour = cache.pointee.nextColour
    cache.pointee.nextColour = colour &+ 1 >= cache.pointee.colours ? 0 : colour &+ 1
    let count = cache.pointee.perSlab
    let objects = UInt(bitPattern: memory) &+ cache.pointee.firstOffset &+ colour &* cache.pointee.colourStep
    slab.initialize(to: SlabHeader(magic: slabMagic, cache: cache, next: nil, prev: nil,
                                   objects: objects, freeCount: UInt32(truncatingIfNeeded: count), list: emptyList))
    let stack = freeStack(slab)
    let state = stateBytes(slab, cache)
    var i: UInt = 0
    while i < count {
      stack[Int(i)] = UInt32(truncatingIfNeeded: count &- 1 &- i)  // object 0 on top
      state[Int(i)] = 1
      if let ctor = cache.pointee.ctor {
        ctor(RawPtr(bitPattern: objects &+ i &* cache.pointee.stride))
      }
      i &+= 1
    }
    push(cache, slab, on: emptyList)
    cache.pointee.slabCount &+= 1
    cache.pointee.freeInSlabs &+= count
    return slab
  }

  /// Moves up to `want` objects from the slabs to `out` (cache lock held).
  static func takeFromSlabs(_ cache: CachePtr, _ out: UnsafeMutablePointer<RawPtr>, want: UInt) -> UInt {
    var got: UInt = 0
    while got < want {
      var slab = cache.pointee.partial
      if slab == nil { slab = cache.pointee.empty }
      if slab == nil { slab = grow(cache) }
      guard let s = slab else { break }
      let stack = freeStack(s)
      while got < want && s.pointee.freeCount > 0 {
        s.pointee.freeCount &-= 1
        let index = UInt(stack[Int(s.pointee.freeCount)])
        out[Int(got)] = RawPtr(bitPattern: s.pointee.objects &+ index &* cache.pointee.stride)!
        got &+= 1
      }
      move(cache, s, to: s.pointee.freeCount == 0 ? fullList : partialList)
    }
    cache.pointee.freeInSlabs &-= got
    return got
  }

  /// offset / stride for an offset inside a slab. With slabs below 4 GiB the
  /// multiply by the rounded-up reciprocal is exact for every multiple of
  /// the stride (and never maps a non-multiple onto one: callers that
  /// validate compare index * stride with the offset).
  @inline(__always)
  static func index(_ offset: UInt, _ cache: CachePtr) -> UInt {
    let r = cache.pointee.reciprocal
    if r != 0 { return (offset &* r) &>> 32 }
    return offset / cache.pointee.stride
  }

  /// The slab of an object already validated by `check`.
  @inline(__always)
  static func slab(of object: RawPtr, _ cache: CachePtr) -> SlabPtr {
    SlabPtr(bitPattern: UInt(bitPattern: object) & ~(cache.pointee.slabBytes &- 1))!
  }

  /// Returns objects to their slabs (cache lock held).
  static func returnToSlabs(_ cache: CachePtr, _ objects: UnsafeMutablePointer<RawPtr>, count: UInt) {
    var i: UInt = 0
    while i < count {
      let object = objects[Int(i)]
      let s = slab(of: object, cache)
      let index = SlabCaches.index(UInt(bitPattern: object) &- s.pointee.objects, cache)
      freeStack(s)[Int(s.pointee.freeCount)] = UInt32(truncatingIfNeeded: index)
      s.pointee.freeCount &+= 1
      move(cache, s, to: UInt(s.pointee.freeCount) == cache.pointee.perSlab ? emptyList : partialList)
      i &+= 1
    }
    cache.pointee.freeInSlabs &+= count
  }

  /// Validates a freed object; returns its slab and index.
  @inline(__always)
  static func check(_ cache: CachePtr, _ object: RawPtr, call: StaticString) -> (SlabPtr, UInt) {
    if cache.pointee.magic != cacheMagic { Diagnostics.fatal(call, "cache already destroyed; object", object) }
    let base = UInt(bitPattern: object) & ~(cache.pointee.slabBytes &- 1)
    // A slab is a page block of its own (its alignment, 16 KiB or more, is
    // above the page size), so a slab base is such a block's start; anything
    // else (a small block, a guard page, memory not ours) is not a slab and
    // must not be read as one.
    guard Core.ownsPageBlock(at: base) else {
      Diagnostics.fatal(call, "object from another cache", object)
    }
    let s = SlabPtr(bitPattern: base)!
    if s.pointee.magic != slabMagic || s.pointee.cache != cache {
      Diagnostics.fatal(call, "object from another cache", object)
    }
    let offset = UInt(bitPattern: object) &- s.pointee.objects
    let index = offset < cache.pointee.slabBytes ? SlabCaches.index(offset, cache) : cache.pointee.perSlab
    if UInt(bitPattern: object) < s.pointee.objects || index &* cache.pointee.stride != offset || index >= cache.pointee.perSlab {
      Diagnostics.invalidPointer(call, object)
    }
    return (s, index)
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

  /// Runs the destructor on every object of an empty slab and frees it
  /// (cache lock held). Returns the bytes released.
  static func release(_ cache: CachePtr, _ slab: SlabPtr) -> UInt {
    unlink(cache, slab)
    if let dtor = cache.pointee.dtor {
      var i: UInt = 0
      while i < cache.pointee.perSlab {
        dtor(RawPtr(bitPattern: slab.pointee.objects &+ i &* cache.pointee.stride))
        i &+= 1
      }
    }
    slab.pointee.magic = 0
    cache.pointee.slabCount &-= 1
    cache.pointee.freeInSlabs &-= cache.pointee.perSlab
    Core.free(UnsafeMutableRawPointer(slab))
    return cache.pointee.slabBytes
  }

  static func releaseEmpty(_ cache: CachePtr) -> UInt {
    var bytes: UInt = 0
    while let slab = cache.pointee.empty { bytes &+= release(cache, slab) }
    return bytes
  }

  static func activeObjects(_ cache: CachePtr) -> UInt {
    var net = 0
    var i: UInt = 0
    while i < UInt(cache.pointee.magazineCount) {
      net &+= magazine(cache, i).pointee.net
      i &+= 1
    }
    return net > 0 ? UInt(net) : 0
  }

  static var registry: UnsafeMutableRawPointer { UnsafeMutableRawPointer(swm_pool_registry()) }
  static var registryHead: UnsafeMutablePointer<CachePtr?> {
    (registry + 8).assumingMemoryBound(to: CachePtr?.self)
  }

  @inline(never)
  static func refill(_ cache: CachePtr, _ mag: MagazinePtr) -> UInt32 {
    swm_lock(lock(UnsafeMutableRawPointer(cache)))
    let got = takeFromSlabs(cache, slots(mag), want: batch)
    swm_unlock(lock(UnsafeMutableRawPointer(cache)))
    return UInt32(truncatingIfNeeded: got)
  }

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
}

// MARK: - C API

/// A cache of `size`-byte objects aligned to `align` (0: 16; else a power of
/// two). `ctor` runs on each object when its slab is made, `dtor` when the
/// slab is released. NULL when the parameters are impossible or memory is out.
@c(swm_cache_create)
public func swm_cache_create(_ name: UnsafePointer<CChar>?, _ size: UInt, _ align: UInt,
                             _ ctor: CacheCtor?, _ dtor: CacheCtor?) -> OpaquePointer? {
  let alignment = align == 0 ? 16 : align
  if size == 0 || size > SlabCaches.maxObject || !isPowerOfTwo(alignment) || alignment > SlabCaches.maxObject {
    return nil
  }
  let stride = (size &+ alignment &- 1) & ~(alignment &- 1)
  var slabBytes = SlabCaches.minSlab
  var shape = SlabCaches.layout(slabBytes: slabBytes, stride: stride, align: alignment)
  while shape.count < 8 {
    slabBytes &<<= 1
    shape = SlabCaches.layout(slabBytes: slabBytes, stride: stride, align: alignment)
  }
  let leftover = slabBytes &- shape.firstOffset &- shape.count &* stride
  let colourStep = max(64, alignment)

  let headerBytes = (UInt(MemoryLayout<SlabCacheHeader>.stride) &+ 63) & ~63
  // A power of two (CPU numbers are masked), from the CPUs we may run on.
  var magazineCount: UInt32 = 1
  let cpus = min(swm_pool_cpu_span(), SlabCaches.maxMagazines)
  while magazineCount < cpus { magazineCount &<<= 1 }
  let total = headerBytes &+ UInt(magazineCount) &* SlabCaches.magazineBytes &+ SlabCaches.nameBytes
  guard let memory = Core.allocate(total, alignment: 64) else { return nil }
  memory.initializeMemory(as: UInt8.self, repeating: 0, count: Int(total))
  let nameBuffer = (memory + Int(total &- SlabCaches.nameBytes)).assumingMemoryBound(to: CChar.self)
  var n = 0
  if let name {
    while n < Int(SlabCaches.nameBytes) - 1 && name[n] != 0 {
      nameBuffer[n] = name[n]
      n &+= 1
    }
  }
  if n == 0 {
    let fallback: StaticString = "cache"
    UnsafeMutableRawPointer(nameBuffer).copyMemory(from: fallback.utf8Start, byteCount: fallback.utf8CodeUnitCount)
  }
  let cache = memory.bindMemory(to: SlabCacheHeader.self, capacity: 1)
  cache.initialize(to: SlabCacheHeader(
    lockWord: 0, magazineCount: magazineCount, magic: SlabCaches.cacheMagic, next: nil,
    objectSize: size, stride: stride, align: alignment, slabBytes: slabBytes,
    perSlab: shape.count, firstOffset: shape.firstOffset,
    colourStep: colourStep, colours: leftover / colourStep &+ 1, nextColour: 0,
    ctor: ctor, dtor: dtor, partial: nil, full: nil, empty: nil,
    slabCount: 0, freeInSlabs: 0, magazines: memory + Int(headerBytes), name: nameBuffer,
    reciprocal: slabBytes <= 1 << 32 ? ((1 << 32) &+ stride &- 1) / stride : 0))

  let registryLock = SlabCaches.lock(SlabCaches.registry)
  swm_lock(registryLock)
  cache.pointee.next = SlabCaches.registryHead.pointee
  SlabCaches.registryHead.pointee = cache
  swm_unlock(registryLock)
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
  let registryLock = SlabCaches.lock(SlabCaches.registry)
  swm_lock(registryLock)
  var link = SlabCaches.registryHead
  while let c = link.pointee {
    if c == cache {
      link.pointee = c.pointee.next
      break
    }
    link = withUnsafeMutablePointer(to: &c.pointee.next) { $0 }
  }
  swm_unlock(registryLock)

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
