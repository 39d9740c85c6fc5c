import CShim

// See Malloc.swift for an overview; the mitigations are listed in Mitigations.swift.

/// Freed small blocks wait here before reuse (Mitigations.quarantine). A
/// block is zeroed in full when it enters, but for its last word, which
/// takes the freed tag (with canaries that word is the trailer, never the
/// caller's: reads after free see zeros only); the ring keeps its
/// bookkeeping outside the blocks. When it leaves, the block must still
/// read so, else a write after free is reported; then it goes back to its
/// central list.
///
/// Invariants (quarantine lock, taken with no other lock held): the ring is
/// a FIFO of `count` blocks ending before `next`; `bytes` is the sum of
/// their class sizes; count <= slots, and bytes <= maxBytes once `enter`
/// returns (but for a single block larger than that).
enum Quarantine {
  static let slots: UInt = 1024
  /// The quarantine also holds at most this many bytes: 1024 blocks of up to
  /// 32 KiB would keep 16 MiB resident (and make every fork copy its page
  /// tables); the limit only shortens the wait of blocks over 4 KiB.
  static let maxBytes: UInt = 4 << 20

  struct State {
    var next: UInt
    var count: UInt
    /// Bytes of the blocks in quarantine (free memory in mallinfo2).
    var bytes: UInt
    var ring: InlineArray<1024, RawPtr?>
  }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(swm_lock_index_quarantine()) }
  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.quarantine) { $0 }
  }

  /// A freed block enters; whatever that pushes out is checked and released
  /// after the lock is dropped.
  static func enter(_ p: RawPtr, sizeClass: UInt32, tag: UInt) {
    let size = UInt(swm_class_to_size(sizeClass))
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
    p.storeBytes(of: tag, toByteOffset: Int(size &- 8), as: UInt.self)
    var evicted = enqueue(p, bytes: size)
    while let block = evicted {
      release(block)
      evicted = evictOverLimit()
    }
  }

  /// Puts a block in the ring; returns the block it pushed out, if any.
  private static func enqueue(_ p: RawPtr, bytes: UInt) -> RawPtr? {
    swm_lock(lock)
    let q = state
    let full = q.pointee.count == slots
    let evicted = full ? evictOldest() : nil
    q.pointee.ring[Int(q.pointee.next)] = p
    q.pointee.next = (q.pointee.next &+ 1) % slots
    q.pointee.count &+= 1
    q.pointee.bytes &+= bytes
    let overLimit = !full && q.pointee.bytes > maxBytes
    swm_unlock(lock)
    return overLimit ? evictOverLimit() : evicted
  }

  /// The oldest block when the quarantine holds more than maxBytes.
  private static func evictOverLimit() -> RawPtr? {
    swm_lock(lock)
    let q = state
    let block = q.pointee.bytes > maxBytes && q.pointee.count > 1 ? evictOldest() : nil
    swm_unlock(lock)
    return block
  }

  /// Takes the oldest block out of the ring (lock held, ring not empty).
  private static func evictOldest() -> RawPtr {
    let q = state
    let oldest = Int((q.pointee.next &+ slots &- q.pointee.count) % slots)
    let block = q.pointee.ring[oldest]!
    q.pointee.ring[oldest] = nil
    q.pointee.count &-= 1
    q.pointee.bytes &-= UInt(swm_class_to_size(smallClass(of: block)))
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

  /// Calls `body` with each quarantined block (lock held: no allocation in
  /// `body`), for the statistics.
  static func forEach(_ body: (RawPtr) -> Void) {
    swm_lock(lock)
    let q = state
    var k: UInt = 0
    while k < q.pointee.count {
      if let block = q.pointee.ring[Int((q.pointee.next &+ slots &- q.pointee.count &+ k) % slots)] { body(block) }
      k &+= 1
    }
    swm_unlock(lock)
  }

  /// Bytes in quarantine, for mallinfo2 (free memory, not in use).
  static func bytes() -> UInt {
    swm_lock(lock)
    let bytes = state.pointee.bytes
    swm_unlock(lock)
    return bytes
  }

  /// A block leaves: it must read as it was left, then it goes back to its
  /// central list.
  private static func release(_ block: RawPtr) {
    let sizeClass = smallClass(of: block)
    let size = Int(swm_class_to_size(sizeClass))
    let tag = UInt(bitPattern: block) ^ Heap.state.pointee.tagSecret
    // the last word must be the tag and the rest zero, checked 32 bytes at
    // a time (blocks are multiples of 16 bytes)
    var stray = block.load(fromByteOffset: size &- 8, as: UInt.self) ^ tag
    var offset = 0
    while offset &+ 32 <= size &- 8 {
      stray |= block.load(fromByteOffset: offset, as: UInt.self) | block.load(fromByteOffset: offset &+ 8, as: UInt.self)
        | block.load(fromByteOffset: offset &+ 16, as: UInt.self) | block.load(fromByteOffset: offset &+ 24, as: UInt.self)
      offset &+= 32
    }
    while offset < size &- 8 {
      stray |= block.load(fromByteOffset: offset, as: UInt.self)
      offset &+= 8
    }
    if stray != 0 { Diagnostics.damageFound("write after free detected in block", block, during: "free()") }
    Central.release(sizeClass, head: block)  // word 0 is nil: a one-block list
  }
}
