import CShim

/// Secure mode (SWIFTMALLOC_SECURE=1, or libswiftmalloc-secure.so).
///
/// The fast paths stay as they are and are simply never taken: smallLimit is
/// 0 and every thread-cache bin has limit 0, so each malloc and free comes
/// here, where it can afford to check:
/// - small blocks carry a canary and their requested size; an overflow of one
///   byte or more past the request is caught on free (and by realloc and
///   malloc_usable_size);
/// - freed blocks are zeroed at once (but for the freed tag in bytes 8..15)
///   and wait in a quarantine of
///   `quarantineSlots` blocks before reuse; a block leaving quarantine must
///   still be all zero (but for its freed tag), else a write after free is
///   reported;
/// - new spans hand out their blocks in a random order, and the links of
///   every span free list are encoded (CentralFreeList.swift, in both modes);
/// - spans, page runs and mmap blocks get guard pages (PageHeap, LargeBlocks).
///
/// Layout of a small block of class size S holding a request of n bytes:
///
///     0            n                     S-8          S
///     | caller's n | canary bytes (>= 8)  | n ^ key    |
enum Secure {
  static let quarantineOffset = 12288
  static let quarantineSlots: UInt = 1024
  /// Canary (at least 8 bytes) plus the size word.
  static let overhead: UInt = 16

  @inline(__always) static var ring: UnsafeMutablePointer<RawPtr?> { Heap.region(at: quarantineOffset, as: RawPtr?.self) }

  @inline(__always)
  static var canaryByte: UInt8 { UInt8(truncatingIfNeeded: Heap.state.pointee.keySecret &>> 16) | 0x81 }

  @inline(__always)
  static func sizeKey(_ p: RawPtr) -> UInt {
    (Heap.state.pointee.keySecret &>> 7) ^ (UInt(bitPattern: p) &* 0xff51_afd7_ed55_8ccd)
  }

  // MARK: - allocation

  static func allocate(_ size: UInt, zeroed: Bool) -> RawPtr? {
    if size >= Heap.maxRequest {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let state = Heap.state
    let mmapFrom = state.pointee.mmapEnabled != 0 ? state.pointee.mmapThreshold : UInt.max
    if size &+ overhead <= UInt(SWM_MAX_SMALL) && size < mmapFrom {
      return allocateSmall(swm_size_to_class(Int(bitPattern: size &+ overhead)), request: size, zeroed: zeroed)
    }
    if size >= mmapFrom { return LargeBlocks.allocate(size, alignment: OSMemory.pageSize, zeroed: true) }
    return PageHeap.allocateRun(size, alignment: OSMemory.pageSize, zeroed: zeroed ? true : nil)
  }

  static func allocateAligned(_ alignment: UInt, _ size: UInt) -> RawPtr? {
    let state = Heap.state
    let mmapFrom = state.pointee.mmapEnabled != 0 ? state.pointee.mmapThreshold : UInt.max
    if alignment <= OSMemory.pageSize && size &+ overhead <= UInt(SWM_MAX_SMALL) && size < mmapFrom {
      var c = swm_size_to_class(Int(bitPattern: max(size &+ overhead, alignment)))
      while c < UInt32(SWM_NUM_CLASSES) && UInt(swm_class_to_size(c)) % alignment != 0 { c &+= 1 }
      if c < UInt32(SWM_NUM_CLASSES) { return allocateSmall(c, request: size, zeroed: false) }
    }
    if size &+ alignment >= mmapFrom {
      return LargeBlocks.allocate(size, alignment: max(alignment, OSMemory.pageSize), zeroed: nil)
    }
    return PageHeap.allocateRun(size, alignment: max(alignment, OSMemory.pageSize), zeroed: nil)
  }

  private static func allocateSmall(_ sizeClass: UInt32, request n: UInt, zeroed: Bool) -> RawPtr? {
    let (head, taken) = Central.fetch(sizeClass, count: 1, owner: 0)
    guard taken == 1, let block = head else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let size = UInt(swm_class_to_size(sizeClass))
    block.storeBytes(of: 0, as: UInt.self)                  // fetch's chain link
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self) // freed tag
    if zeroed { block.initializeMemory(as: UInt8.self, repeating: 0, count: Int(n)) }
    (block + Int(n)).initializeMemory(as: UInt8.self, repeating: canaryByte, count: Int(size &- 8 &- n))
    block.storeBytes(of: n ^ sizeKey(block), toByteOffset: Int(size &- 8), as: UInt.self)
    return block
  }

  // MARK: - checks

  /// The size the caller asked for; aborts if the size word was overwritten.
  static func requestedSize(_ p: RawPtr, sizeClass: UInt32, call: StaticString) -> UInt {
    let size = UInt(swm_class_to_size(sizeClass))
    let n = p.load(fromByteOffset: Int(size &- 8), as: UInt.self) ^ sizeKey(p)
    if n > size &- overhead { Diagnostics.fatal(call, "heap overflow (block trailer overwritten) in", p) }
    return n
  }

  /// Checks the size word and every canary byte; returns the requested size.
  static func checkCanary(_ p: RawPtr, sizeClass: UInt32, call: StaticString) -> UInt {
    let size = UInt(swm_class_to_size(sizeClass))
    let n = requestedSize(p, sizeClass: sizeClass, call: call)
    let canary = canaryByte
    let end = size &- 8  // the size word; blocks are 16-byte multiples, so end is 8-aligned
    var i = n
    // bytes up to the first 8-byte boundary, then whole words
    while i < end && i & 7 != 0 {
      if p.load(fromByteOffset: Int(i), as: UInt8.self) != canary {
        Diagnostics.fatal(call, "heap overflow past the end of", p)
      }
      i &+= 1
    }
    let word = UInt(canary) &* 0x0101_0101_0101_0101
    while i < end {
      if p.load(fromByteOffset: Int(i), as: UInt.self) != word {
        Diagnostics.fatal(call, "heap overflow past the end of", p)
      }
      i &+= 8
    }
    return n
  }

  // MARK: - free and quarantine

  /// free of a small block (already checked: a block start, not freed).
  static func free(_ p: RawPtr, sizeClass: UInt32, tag: UInt, call: StaticString) {
    _ = checkCanary(p, sizeClass: sizeClass, call: call)
    let size = UInt(swm_class_to_size(sizeClass))
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
    p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
    let lock = swm_lock_at(swm_lock_index_quarantine())
    swm_lock(lock)
    let state = Heap.state
    let slot = ring + Int(state.pointee.quarantineNext)
    let evicted = slot.pointee
    slot.pointee = p
    state.pointee.quarantineNext = (state.pointee.quarantineNext &+ 1) % quarantineSlots
    swm_unlock(lock)
    if let evicted { release(evicted) }
  }

  /// A block leaves quarantine: it must read as it was left, then it goes
  /// back to its central list.
  private static func release(_ block: RawPtr) {
    guard let span = PageMap.lookup(UInt(bitPattern: block)), span.pointee.kind == SpanKind.small else {
      Diagnostics.fatal("free()", "quarantine corrupted at", block)
    }
    let sizeClass = UInt32(span.pointee.sizeClass)
    let size = Int(swm_class_to_size(sizeClass))
    let tag = UInt(bitPattern: block) ^ Heap.state.pointee.tagSecret
    // word 0 must be zero and word 1 the tag; the rest zero, checked 32
    // bytes at a time (blocks are multiples of 16 bytes)
    var stray = block.load(as: UInt.self) | (block.load(fromByteOffset: 8, as: UInt.self) ^ tag)
    var offset = 16
    while offset &+ 32 <= size {
      stray |= block.load(fromByteOffset: offset, as: UInt.self) | block.load(fromByteOffset: offset &+ 8, as: UInt.self)
        | block.load(fromByteOffset: offset &+ 16, as: UInt.self) | block.load(fromByteOffset: offset &+ 24, as: UInt.self)
      offset &+= 32
    }
    while offset < size {
      stray |= block.load(fromByteOffset: offset, as: UInt.self)
      offset &+= 8
    }
    if stray != 0 { Diagnostics.fatal("free()", "write after free detected in", block) }
    Central.release(sizeClass, head: block)  // word 0 is nil: a one-block list
  }
}
