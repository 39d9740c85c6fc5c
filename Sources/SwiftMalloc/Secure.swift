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
///   and wait in a quarantine of `quarantineSlots` blocks (and at most
///   `quarantineMaxBytes`) before reuse; a block leaving quarantine must
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
  /// The quarantine also holds at most this many bytes: 1024 blocks of up to
  /// 32 KiB would keep 16 MiB resident (and make every fork copy its page
  /// tables); the limit only shortens the wait of blocks over 4 KiB.
  static let quarantineMaxBytes: UInt = 4 << 20
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
  /// The block waits in quarantine, a FIFO of at most `quarantineSlots`
  /// blocks and `quarantineMaxBytes` bytes; whatever that pushes out is
  /// checked and released after the lock is dropped.
  static func free(_ p: RawPtr, sizeClass: UInt32, tag: UInt, call: StaticString) {
    _ = checkCanary(p, sizeClass: sizeClass, call: call)
    let size = UInt(swm_class_to_size(sizeClass))
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
    p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
    var evicted = enqueue(p, bytes: size)
    while let block = evicted {
      release(block)
      evicted = evictOverLimit()
    }
  }

  /// Puts a block in quarantine; returns the block it pushed out, if any.
  private static func enqueue(_ p: RawPtr, bytes: UInt) -> RawPtr? {
    let lock = swm_lock_at(swm_lock_index_quarantine())
    swm_lock(lock)
    let state = Heap.state
    let full = state.pointee.quarantineCount == quarantineSlots
    let evicted = full ? evictOldest() : nil
    ring[Int(state.pointee.quarantineNext)] = p
    state.pointee.quarantineNext = (state.pointee.quarantineNext &+ 1) % quarantineSlots
    state.pointee.quarantineCount &+= 1
    state.pointee.quarantineBytes &+= bytes
    let overLimit = !full && state.pointee.quarantineBytes > quarantineMaxBytes
    swm_unlock(lock)
    return overLimit ? evictOverLimit() : evicted
  }

  /// The oldest block when the quarantine holds more than its bytes.
  private static func evictOverLimit() -> RawPtr? {
    let lock = swm_lock_at(swm_lock_index_quarantine())
    swm_lock(lock)
    let state = Heap.state
    let block = state.pointee.quarantineBytes > quarantineMaxBytes && state.pointee.quarantineCount > 1 ? evictOldest() : nil
    swm_unlock(lock)
    return block
  }

  /// Takes the oldest block out of the ring (quarantine lock held, ring not empty).
  private static func evictOldest() -> RawPtr {
    let state = Heap.state
    let oldest = (state.pointee.quarantineNext &+ quarantineSlots &- state.pointee.quarantineCount) % quarantineSlots
    let block = ring[Int(oldest)]!
    ring[Int(oldest)] = nil
    state.pointee.quarantineCount &-= 1
    state.pointee.quarantineBytes &-= UInt(swm_class_to_size(smallClass(of: block)))
    return block
  }

  /// The size class of a quarantined block (aborts if the page map says it
  /// is not a small block: the ring was overwritten).
  private static func smallClass(of block: RawPtr) -> UInt32 {
    guard let span = PageMap.lookup(UInt(bitPattern: block)), span.pointee.kind == SpanKind.small else {
      Diagnostics.fatal("free()", "quarantine corrupted at", block)
    }
    return UInt32(span.pointee.sizeClass)
  }

  /// Bytes in quarantine, for mallinfo2 (free memory, not in use).
  static func quarantinedBytes() -> UInt {
    let lock = swm_lock_at(swm_lock_index_quarantine())
    swm_lock(lock)
    let bytes = Heap.state.pointee.quarantineBytes
    swm_unlock(lock)
    return bytes
  }

  /// A block leaves quarantine: it must read as it was left, then it goes
  /// back to its central list.
  private static func release(_ block: RawPtr) {
    let sizeClass = smallClass(of: block)
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
