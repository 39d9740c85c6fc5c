import CShim

// See Malloc.swift for an overview; the mitigations are listed in Mitigations.swift.

/// Freed small blocks wait here before reuse (Mitigations.quarantine). A
/// block is zeroed in full when it enters, but for its last word, which
/// takes the freed tag (with canaries that word is the trailer, never the
/// caller's: reads after free see zeros only); the ring keeps its
/// bookkeeping outside the blocks. When it
/// leaves, the block must still read so, else a write after free is
/// reported; then it goes back to its central list.
///
/// Blocks leave in batches, so that one free in `batch` pays for the class
/// locks: a batch is checked and sorted by class with no lock held, and
/// each class of the batch gets its blocks back in one Central.release.
/// The batch is taken above the limits, never within them: every block
/// waits for at least `depth` later frees, or until `maxBytes` of blocks
/// freed after it have entered.
///
/// Invariants (quarantine lock, taken with no other lock held): the ring is
/// a FIFO of `count` blocks ending before `next`; `bytes` is the sum of
/// their class sizes; count <= slots (an `enter` that finds the ring full,
/// before the thread that filled it drains it, takes the oldest block out
/// itself); the thread whose `enter` brings count to slots or bytes over
/// maxBytes + batchBytes drains it to count <= depth and bytes <= maxBytes
/// (but for a single block larger than that).
enum Quarantine {
  /// Later frees each block waits for at least (unless maxBytes is reached).
  static let depth: UInt = 1024
  /// Blocks that leave together at most (a batch on the stack).
  static let batch: UInt = 32
  /// A batch stops growing once it holds this many bytes, and the bytes in
  /// quarantine may exceed maxBytes by as much before a batch leaves: the
  /// blocks of large classes leave a few at a time too, and a batch empties
  /// few spans (Central.keptLimit keeps that many empty).
  static let batchBytes: UInt = 64 << 10
  /// Ring slots: depth plus one batch.
  static let slots: UInt = 1056
  /// The quarantine also holds at most this many bytes: 1024 blocks of up to
  /// 32 KiB would keep 32 MiB resident (and make every fork copy its page
  /// tables); the limit only shortens the wait of blocks over 4 KiB.
  static let maxBytes: UInt = 4 << 20

  struct State {
    var next: UInt
    var count: UInt
    /// Bytes of the blocks in quarantine (free memory in mallinfo2).
    var bytes: UInt
    var ring: InlineArray<1056, RawPtr?>
  }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(swm_lock_index_quarantine()) }
  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.quarantine) { $0 }
  }

  /// A freed block enters; when the ring or its bytes are over their limits,
  /// the oldest blocks leave, checked and released after the lock is dropped.
  static func enter(_ p: RawPtr, sizeClass: UInt32, tag: UInt) {
    let size = UInt(swm_class_to_size(sizeClass))
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
    p.storeBytes(of: tag, toByteOffset: Int(size &- 8), as: UInt.self)
    swm_lock(lock)
    let q = state
    // full: another thread filled it and has not drained it yet
    let spilled = q.pointee.count == slots ? evictOldest() : nil
    q.pointee.ring[Int(q.pointee.next)] = p
    q.pointee.next = (q.pointee.next &+ 1) % slots
    q.pointee.count &+= 1
    q.pointee.bytes &+= size
    let over = q.pointee.count == slots || q.pointee.bytes > maxBytes &+ batchBytes
    swm_unlock(lock)
    if let (block, sizeClass) = spilled {
      var one = Batch()
      one.append(block, sizeClass: sizeClass)
      one.release()
    }
    if over { drain() }
  }

  /// Takes batches of the oldest blocks out until count <= depth and bytes
  /// <= maxBytes (or one block is left), releasing each batch.
  @inline(never)
  private static func drain() {
    var out = Batch()
    while true {
      swm_lock(lock)
      let q = state
      while out.count < batch && out.bytes < batchBytes
              && (q.pointee.count > depth || q.pointee.bytes > maxBytes && q.pointee.count > 1) {
        let (block, sizeClass) = evictOldest()
        out.append(block, sizeClass: sizeClass)
      }
      swm_unlock(lock)
      if out.count == 0 { return }
      out.release()
      out.count = 0
      out.bytes = 0
    }
  }

  /// Takes the oldest block out of the ring (lock held, ring not empty);
  /// returns it with its class.
  private static func evictOldest() -> (RawPtr, UInt32) {
    let q = state
    let oldest = Int((q.pointee.next &+ slots &- q.pointee.count) % slots)
    let block = q.pointee.ring[oldest]!
    q.pointee.ring[oldest] = nil
    q.pointee.count &-= 1
    let sizeClass = smallClass(of: block)
    q.pointee.bytes &-= UInt(swm_class_to_size(sizeClass))
    return (block, sizeClass)
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

  /// The size class of a block leaving the quarantine (aborts if the page
  /// map says it is not a small block: the ring was overwritten).
  @inline(__always)
  private static func smallClass(of block: RawPtr) -> UInt32 {
    guard let facts = PageMap.smallFacts(UInt(bitPattern: block)), facts.isSmall else {
      Diagnostics.fatal("free()", "quarantine corrupted at", block)
    }
    return facts.sizeClass
  }

  /// Whether a block that leaves reads as it was left: its last word the
  /// tag and the rest zero (one or-ed difference, a loop the compiler
  /// vectorizes; blocks are multiples of 16 bytes).
  @inline(__always)
  fileprivate static func isIntact(_ block: RawPtr, size: Int) -> Bool {
    let tag = UInt(bitPattern: block) ^ Heap.state.pointee.tagSecret
    var stray = block.load(fromByteOffset: size &- 8, as: UInt.self) ^ tag
    var offset = 0
    while offset < size &- 8 {
      stray |= block.load(fromByteOffset: offset, as: UInt.self)
      offset &+= 8
    }
    return stray == 0
  }
}

/// Blocks leaving the quarantine together (on the stack: no allocation).
private struct Batch {
  var blocks: InlineArray<32, RawPtr?> = InlineArray(repeating: nil)
  var classes: InlineArray<32, UInt8> = InlineArray(repeating: 0)
  var count: UInt = 0
  var bytes: UInt = 0

  mutating func append(_ block: RawPtr, sizeClass: UInt32) {
    blocks[Int(count)] = block
    classes[Int(count)] = UInt8(truncatingIfNeeded: sizeClass)
    count &+= 1
    bytes &+= UInt(swm_class_to_size(sizeClass))
  }

  /// Checks every block, then gives them back to their central lists, one
  /// list (linked through word 0, which reads zero) and one lock per class.
  func release() {
    var heads: ClassArray<RawPtr?> = InlineArray(repeating: nil)
    var present: UInt64 = 0
    var i = 0
    while i < Int(count) {
      let block = blocks[i]!
      let sizeClass = UInt32(classes[i])
      if !Quarantine.isIntact(block, size: Int(swm_class_to_size(sizeClass))) {
        Diagnostics.damageFound("write after free detected in block", block, during: "free()")
      }
      block.storeBytes(of: heads[Int(sizeClass)], as: RawPtr?.self)
      heads[Int(sizeClass)] = block
      present |= 1 &<< UInt64(sizeClass)
      i &+= 1
    }
    while present != 0 {
      let sizeClass = UInt32(present.trailingZeroBitCount)
      present &= present &- 1
      Central.release(sizeClass, head: heads[Int(sizeClass)])
    }
  }
}
