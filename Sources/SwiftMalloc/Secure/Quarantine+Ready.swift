import CShim

// See Malloc.swift for an overview; the quarantine is in Quarantine.swift.

/// Where blocks go when they leave the quarantine. A batch is checked with
/// no lock held (Quarantine.isIntact: a write after free stops the program
/// here); its blocks then go to the ready lists of the shard they left, one
/// list per class, while those have room, and the rest to their central
/// lists, one Central.release per class.
///
/// A ready list is a small stock of checked blocks for the mallocs of the
/// shard's threads (Canary.allocate takes from it first, and a malloc that
/// finds it empty fetches a few fresh blocks for it: `stock`): in a steady
/// churn, what one thread frees comes back to it through its own shard,
/// under the shard lock it takes anyway, and its malloc and free never take
/// a class lock. The lists live in the shard, outside the blocks (no link
/// in a block to forge), and a block on one is in the state it left the
/// quarantine in: zero but for its freed tag (last word), so a double free
/// of it is still seen, and a write into its first 16 bytes (where a link
/// would be) is reported when malloc takes it. The lists count as quarantine in the statistics
/// (free memory the program cannot reach).
///
/// Invariants (shard lock held): class c's list is ready[c * readyDepth
/// ..< c * readyDepth + readyCount[c]], small blocks of class c, at most
/// readyDepth; readyBytes is the sum of their sizes and at most
/// readyMaxBytes. Taken with no other lock held, as the shard's lock is.
extension Quarantine {
  /// Blocks a ready list holds at most: one batch (`Shard.ready` holds
  /// SWM_NUM_CLASSES of them).
  static let readyDepth: UInt8 = 32
  /// Bytes a shard's ready lists hold at most: one batch of the largest
  /// bytes a batch reaches (batchBytes plus one block of the largest class).
  static let readyMaxBytes: UInt = batchBytes &+ (32 << 10)

  /// The shard of the calling thread.
  @inline(__always)
  static var currentShard: Int { Int(swm_thread_number()) & (shards &- 1) }

  /// A checked block of `sizeClass` from the calling thread's shard, nil
  /// when its list is empty.
  @inline(__always)
  static func takeReady(_ sizeClass: UInt32) -> RawPtr? {
    let shard = currentShard
    let q = state(shard)
    // a racy peek spares a thread that only allocates the shard's lock;
    // the count is read again under the lock
    let counts = withUnsafeMutablePointer(to: &q.pointee.readyCount) { UnsafeMutableRawPointer($0) }
    if swm_atomic_load_byte(counts + Int(sizeClass)) == 0 { return nil }
    swm_lock(lock(shard))
    var block: RawPtr? = nil
    let n = q.pointee.readyCount[Int(sizeClass)]
    if n != 0 {
      let slot = Int(sizeClass) &* Int(readyDepth) &+ Int(n) &- 1
      block = q.pointee.ready[slot]
      q.pointee.ready[slot] = nil
      q.pointee.readyCount[Int(sizeClass)] = n &- 1
      q.pointee.readyBytes &-= UInt(swm_class_to_size(sizeClass))
    }
    swm_unlock(lock(shard))
    // a block on a span's free list holds its link in word 0, checked
    // before it is followed; here words 0 and 1 must still be zero (blocks
    // with canaries are 32 bytes and up: word 1 is never the freed tag)
    if let block, block.load(as: UInt.self) | block.load(fromByteOffset: 8, as: UInt.self) != 0 {
      Diagnostics.fatal("malloc()", "corrupted free list (write after free?) at", block)
    }
    return block
  }

  /// Puts a checked block on `q`'s ready list of its class if that has
  /// room (lock held); false when it has none.
  @inline(__always)
  static func keepReady(_ q: UnsafeMutablePointer<Shard>, _ block: RawPtr, sizeClass: Int, size: UInt) -> Bool {
    let n = q.pointee.readyCount[sizeClass]
    if n == readyDepth || q.pointee.readyBytes &+ size > readyMaxBytes { return false }
    q.pointee.ready[sizeClass &* Int(readyDepth) &+ Int(n)] = block
    q.pointee.readyCount[sizeClass] = n &+ 1
    q.pointee.readyBytes &+= size
    return true
  }

  /// Blocks a malloc that found its ready list empty fetches from the
  /// central list: up to 8, 4 KiB at most (one for itself).
  @inline(__always)
  static func stockCount(_ sizeClass: UInt32) -> UInt32 {
    min(8, max(1, UInt32(4096 / swm_class_to_size(sizeClass))))
  }

  /// Puts a chain of blocks fresh from the central list (linked through
  /// word 0) on the calling thread's shard's ready list of `sizeClass`, as
  /// far as it has room; the rest goes back. Their first two words are
  /// cleared, as takeReady expects them. Every 16th stock of a shard lets
  /// the heap decay (Heap.tick).
  static func stock(_ chain: RawPtr?, sizeClass: UInt32) {
    let shard = currentShard
    let q = state(shard)
    let size = UInt(swm_class_to_size(sizeClass))
    var rest = Batch()
    var cursor = chain
    swm_lock(lock(shard))
    q.pointee.stocks &+= 1
    let tick = q.pointee.stocks & 15 == 0
    while let block = cursor {
      cursor = block.load(as: RawPtr?.self)
      block.storeBytes(of: 0, as: UInt.self)
      block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
      if !keepReady(q, block, sizeClass: Int(sizeClass), size: size) {
        block.storeBytes(of: rest.heads[Int(sizeClass)], as: RawPtr?.self)
        rest.heads[Int(sizeClass)] = block
        rest.present = 1 &<< UInt64(sizeClass)
      }
    }
    swm_unlock(lock(shard))
    rest.releaseRest()
    if tick { Heap.tick() }  // as Quarantine.drain, for a program that only allocates
  }

  /// Gives every ready list back to the central lists (malloc_trim, and
  /// before a request fails for want of memory).
  static func releaseReady() {
    var shard = 0
    while shard < shards {
      var out = Batch()
      swm_lock(lock(shard))
      let q = state(shard)
      forEachReady(q) { block in
        let sizeClass = Int(PageMap.lookup(UInt(bitPattern: block))!.pointee.sizeClass)
        block.storeBytes(of: out.heads[sizeClass], as: RawPtr?.self)
        out.heads[sizeClass] = block
        out.present |= 1 &<< UInt64(sizeClass)
      }
      q.pointee.ready = InlineArray(repeating: nil)
      q.pointee.readyCount = InlineArray(repeating: 0)
      q.pointee.readyBytes = 0
      swm_unlock(lock(shard))
      out.releaseRest()
      shard &+= 1
    }
  }

  /// Calls `body` with each block on `q`'s ready lists (its lock held).
  static func forEachReady(_ q: UnsafeMutablePointer<Shard>, _ body: (RawPtr) -> Void) {
    var c = 1
    while c < Int(SWM_NUM_CLASSES) {
      var k = 0
      while k < Int(q.pointee.readyCount[c]) {
        body(q.pointee.ready[c &* Int(readyDepth) &+ k].unsafelyUnwrapped)
        k &+= 1
      }
      c &+= 1
    }
  }
}

extension Quarantine {
  /// Starts loading the lines the exit check reads of a block over 576
  /// bytes (isIntact): the quarantine's oldest blocks are out of the cache
  /// (it holds 1 MiB of them), and the batch's check, one block after the
  /// other, would wait for each in turn. (Smaller blocks, of which the
  /// quarantine holds 1024, mostly are in the cache: no gain, more work.)
  @inline(__always)
  static func prefetchChecked(_ block: RawPtr, size: Int, salt: UInt) {
    if size <= checkedHead &+ checkedStretch &+ checkedTail { return }
    prefetchLines(block, from: 0, to: checkedHead)
    swm_prefetch(block + (size &- checkedTail))
    let start = stretchStart(block, size: size, salt: salt)
    prefetchLines(block, from: start, to: start &+ checkedStretch)
  }

  /// A hint per line of [from, to) (byte offsets), for a read or a write.
  @inline(__always)
  private static func prefetchLines(_ block: RawPtr, from: Int, to: Int, forWrite: Bool = false) {
    var offset = from
    while offset < to {
      if forWrite { swm_prefetch_write(block + offset) } else { swm_prefetch(block + offset) }
      offset &+= 64
    }
  }

  /// Blocks up to 2 KiB only: of larger ones the hints crowd out the
  /// check's own loads (8 KiB pairs ran 25% slower with them).
  static let prefetchedSizeLimit = 2048

  /// Starts loading, for a write, the lines of a block over 576 bytes that
  /// the exit check did not read: its next free zeroes all of them, and
  /// those stores, missing the cache, would hold up the next lock (a locked
  /// instruction waits for every store before it). Blocks wait on a ready
  /// list for about a batch of mallocs, time enough for the lines to come.
  @inline(__always)
  static func prefetchUnchecked(_ block: RawPtr, size: Int) {
    if size <= checkedHead &+ checkedStretch &+ checkedTail || size > prefetchedSizeLimit { return }
    prefetchLines(block, from: checkedHead, to: size &- checkedTail, forWrite: true)
  }
}

/// Blocks leaving the quarantine together (on the stack: no allocation).
struct Batch {
  var blocks: InlineArray<32, RawPtr?> = InlineArray(repeating: nil)
  var classes: InlineArray<32, UInt8> = InlineArray(repeating: 0)
  var count: UInt = 0
  var bytes: UInt = 0
  /// Draws the stretches the exit check reads (Quarantine.isIntact).
  var salt: UInt = 0
  /// What goes back to the central lists: one list per class, and the
  /// classes present.
  var heads: ClassArray<RawPtr?> = InlineArray(repeating: nil)
  var present: UInt64 = 0

  mutating func append(_ block: RawPtr, sizeClass: UInt32) {
    blocks[Int(count)] = block
    classes[Int(count)] = UInt8(truncatingIfNeeded: sizeClass)
    count &+= 1
    bytes &+= UInt(swm_class_to_size(sizeClass))
  }

  /// Checks every block (no lock held), then puts them on `shard`'s ready
  /// lists while those have room and gives the rest to their central lists
  /// (after the shard's lock is dropped).
  mutating func leave(_ shard: Int) {
    var i = 0
    while i < Int(count) {
      if i &+ 2 < Int(count) {  // the lines two blocks on start loading now
        Quarantine.prefetchChecked(blocks[i &+ 2].unsafelyUnwrapped, size: Int(swm_class_to_size(UInt32(classes[i &+ 2]))),
                                   salt: salt &+ UInt(i &+ 2))
      }
      let block = blocks[i].unsafelyUnwrapped
      let size = Int(swm_class_to_size(UInt32(classes[i])))
      if !Quarantine.isIntact(block, size: size, salt: salt &+ UInt(i)) {
        Diagnostics.damageFound("write after free detected in block", block, during: "free()")
      }
      Quarantine.prefetchUnchecked(block, size: size)
      i &+= 1
    }
    let q = Quarantine.state(shard)
    swm_lock(Quarantine.lock(shard))
    i = 0
    while i < Int(count) {
      let block = blocks[i].unsafelyUnwrapped
      let sizeClass = Int(classes[i])
      let size = UInt(swm_class_to_size(UInt32(sizeClass)))
      if !Quarantine.keepReady(q, block, sizeClass: sizeClass, size: size) {
        block.storeBytes(of: heads[sizeClass], as: RawPtr?.self)
        heads[sizeClass] = block
        present |= 1 &<< UInt64(sizeClass)
      }
      i &+= 1
    }
    swm_unlock(Quarantine.lock(shard))
    releaseRest()
  }

  /// Gives the lists in `heads` back to their central lists, one lock per
  /// class, and empties them.
  mutating func releaseRest() {
    while present != 0 {
      let sizeClass = UInt32(present.trailingZeroBitCount)
      present &= present &- 1
      Central.release(sizeClass, head: heads[Int(sizeClass)])
      heads[Int(sizeClass)] = nil
    }
  }
}
