import CShim

// Slab caches: the slabs. Their layout and colouring, the three slab lists
// (partial, full, empty), growing a cache by one slab, moving objects
// between the slabs and the magazines, validating a freed object, and
// releasing empty slabs. Every function that touches a list runs under the
// cache lock. The structures and invariants are in SlabCache.swift.

// See Malloc.swift for an overview.

/// The shape of a cache's slabs, from its object size and alignment.
struct SlabGeometry {
  var stride: UInt  // object size rounded up to the alignment
  var slabBytes: UInt
  var perSlab: UInt
  var firstOffset: UInt  // offset of object 0 at colour 0
  var colourStep: UInt
  var colours: UInt
}

extension SlabCaches {
  // MARK: layout

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

  /// The smallest slab (a power of two, at least minSlab) holding 8 objects
  /// of `size` bytes aligned to `align` (a power of two, both at most
  /// maxObject), and the colours its leftover bytes allow.
  static func geometry(size: UInt, align: UInt) -> SlabGeometry {
    let stride = (size &+ align &- 1) & ~(align &- 1)
    var slabBytes = minSlab
    var shape = layout(slabBytes: slabBytes, stride: stride, align: align)
    while shape.count < 8 {
      slabBytes &<<= 1
      shape = layout(slabBytes: slabBytes, stride: stride, align: align)
    }
    let leftover = slabBytes &- shape.firstOffset &- shape.count &* stride
    let colourStep = max(64, align)
    return SlabGeometry(stride: stride, slabBytes: slabBytes, perSlab: shape.count, firstOffset: shape.firstOffset,
                        colourStep: colourStep, colours: leftover / colourStep &+ 1)
  }

  @inline(__always)
  static func freeStack(_ slab: SlabPtr) -> UnsafeMutablePointer<UInt32> {
    (UnsafeMutableRawPointer(slab) + Int(slabHeaderBytes)).assumingMemoryBound(to: UInt32.self)
  }

  @inline(__always)
  static func stateBytes(_ slab: SlabPtr, _ cache: CachePtr) -> UnsafeMutablePointer<UInt8> {
    (UnsafeMutableRawPointer(slab) + Int(slabHeaderBytes &+ 4 &* cache.pointee.perSlab)).assumingMemoryBound(to: UInt8.self)
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

  // MARK: objects in and out (cache lock held)

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

  // MARK: releasing slabs (cache lock held)

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
}
