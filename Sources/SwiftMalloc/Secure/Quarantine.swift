import CShim

// See Malloc.swift for an overview; the mitigations are listed in Mitigations.swift.

/// Freed small blocks wait here before reuse (Mitigations.quarantine). A
/// block is zeroed in full when it enters, but for its last word, which
/// takes the freed tag (with canaries that word is the trailer, never the
/// caller's: reads after free see zeros only); the ring keeps its
/// bookkeeping outside the blocks. When it
/// leaves, the block must still read so (all of it up to 576 bytes; of a
/// larger block its first 256 bytes, its last 64 and a 256-byte stretch
/// drawn at each exit: `isIntact`), else a write after free is reported;
/// then it goes to its shard's ready list for that class, for the next
/// malloc of that class by the shard's threads, or back to its central list
/// (Quarantine+Ready.swift).
///
/// The quarantine is split into `shards` (SWM_QUARANTINE_SHARDS) rings, each
/// with its own lock; a free enters the shard of its thread (threads
/// numbered in the order they first ask, round robin over the shards), so
/// up to 4 threads do not serialize on one lock, and a thread's blocks
/// always meet its own later frees (not those of the CPU it ran on, which
/// another CPU's shard might not see for a long time). Each shard keeps its own limits: a block waits for
/// `depth` later frees into its shard, or until `maxBytes` of blocks freed
/// after it have entered that shard.
///
/// Blocks leave in batches, so that one free in `batch` pays for the locks:
/// a batch is checked with no lock held, put on the ready lists under the
/// shard's lock, and what they cannot hold goes back in one Central.release
/// per class.
/// The batch is taken above the limits, never within them.
///
/// Invariants (per shard, under its lock, taken with no other lock held):
/// the ring is a FIFO of `count` blocks ending before `next`; `bytes` is the
/// sum of their class sizes; count <= slots (an `enter` that finds the ring
/// full, before the thread that filled it drains it, takes the oldest block
/// out itself); the thread whose `enter` brings count to slots or bytes over
/// maxBytes + overBytes(size of its block) drains that shard to count <=
/// depth and bytes <= maxBytes (but for a single block larger than that).
enum Quarantine {
  /// Later frees into its shard each block waits for at least (unless the
  /// shard's maxBytes is reached).
  static let depth: UInt = 1024
  /// Blocks that leave together at most (a batch on the stack).
  static let batch: UInt = 32
  /// A batch stops growing once it holds this many bytes, and the bytes in
  /// a shard may exceed maxBytes by as much before a batch leaves: the
  /// blocks of large classes leave a few at a time too, and a batch empties
  /// few spans (Central.keptLimit keeps that many empty).
  static let batchBytes: UInt = 64 << 10
  /// The bytes a shard may hold beyond maxBytes before a free of a block of
  /// `size` bytes drains it: batchBytes, or less than a batch of such
  /// blocks, so that a churn of one class drains at most a batch at a time,
  /// which its ready list can hold (readyDepth; 52 blocks of 1280 bytes
  /// would overflow it).
  @inline(__always)
  static func overBytes(_ size: UInt) -> UInt { min(batchBytes, (batch &- 1) &* size) }
  /// Ring slots per shard: depth plus one batch.
  static let slots: UInt = 1056
  /// Bytes a shard holds at most (1 MiB; 4 MiB over the 4 shards): 1024
  /// blocks of up to 32 KiB would keep 32 MiB resident per shard (and make
  /// every fork copy its page tables); the limit only shortens the wait of
  /// blocks over 1 KiB, and keeps the blocks that leave in the L2 cache.
  static let maxBytes: UInt = 1 << 20
  /// Shards (a power of two).
  static var shards: Int { Int(swm_quarantine_shards()) }

  struct Shard {
    var next: UInt
    var count: UInt
    /// Bytes of the blocks in this shard (free memory in mallinfo2).
    var bytes: UInt
    /// Blocks that left this shard (salts the exit check's stretches and
    /// paces the decay: Quarantine.drain).
    var exits: UInt
    /// Stocks of this shard's ready lists from the central lists (paces the
    /// decay of a program that only allocates: Quarantine.stock).
    var stocks: UInt
    /// Blocks that left this shard checked, for the mallocs of its threads
    /// (Quarantine+Ready.swift): a stack of up to readyDepth per class, kept
    /// outside the blocks (class c's at c * readyDepth).
    var ready: InlineArray<1312, RawPtr?>
    var readyCount: ClassArray<UInt8>
    /// Bytes of the blocks on the ready lists (free memory, as `bytes`).
    var readyBytes: UInt
    var ring: InlineArray<1056, RawPtr?>
  }

  /// SWM_QUARANTINE_SHARDS shards, laid out one after the other.
  struct State {
    var shards: InlineArray<4, Shard>
  }

  @inline(__always) static func lock(_ shard: Int) -> UnsafeMutablePointer<swm_lock_t> {
    swm_lock_at(swm_lock_index_quarantine(UInt32(shard)))
  }
  /// Shard `shard` (0 ..< shards) in the heap state.
  @inline(__always) static func state(_ shard: Int) -> UnsafeMutablePointer<Shard> {
    let base = withUnsafeMutablePointer(to: &Heap.state.pointee.quarantine) { UnsafeMutableRawPointer($0) }
    return (base + shard &* MemoryLayout<Shard>.stride).assumingMemoryBound(to: Shard.self)
  }

  /// A freed block enters the shard of this thread; when that shard is over
  /// its limits, its oldest blocks leave, checked and released after the
  /// lock is dropped.
  static func enter(_ p: RawPtr, sizeClass: UInt32, tag: UInt) {
    let size = UInt(swm_class_to_size(sizeClass))
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
    p.storeBytes(of: tag, toByteOffset: Int(size &- 8), as: UInt.self)
    let shard = Int(swm_thread_number()) & (shards &- 1)
    swm_lock(lock(shard))
    let q = state(shard)
    // full: another thread filled it and has not drained it yet
    let spilled = q.pointee.count == slots ? evictOldest(q) : nil
    q.pointee.ring[Int(q.pointee.next)] = p
    q.pointee.next = (q.pointee.next &+ 1) % slots
    q.pointee.count &+= 1
    q.pointee.bytes &+= size
    let over = q.pointee.count == slots || q.pointee.bytes > maxBytes &+ overBytes(size)
    let salt = q.pointee.exits
    swm_unlock(lock(shard))
    if let (block, sizeClass) = spilled {
      var one = Batch()
      one.salt = salt
      one.append(block, sizeClass: sizeClass)
      one.leave(shard)
    }
    if over { drain(shard) }
  }

  /// Takes batches of the oldest blocks of `shard` out until count <= depth
  /// and bytes <= maxBytes (or one block is left), releasing each batch;
  /// every 512 blocks out of a shard, lets the page heap and the kept mmap
  /// blocks decay (Heap.tick, which the thread caches' slow paths call in
  /// the default mode: without it a program whose frees never empty a span
  /// kept up to the dirty limit, 64 MiB, resident for good).
  @inline(never)
  private static func drain(_ shard: Int) {
    var out = Batch()
    let q = state(shard)
    var firstExit: UInt = 0
    var first = true
    while true {
      swm_lock(lock(shard))
      if first { firstExit = q.pointee.exits; first = false }
      while out.count < batch && out.bytes < batchBytes
              && (q.pointee.count > depth || q.pointee.bytes > maxBytes && q.pointee.count > 1) {
        let (block, sizeClass) = evictOldest(q)
        out.append(block, sizeClass: sizeClass)
      }
      out.salt = q.pointee.exits
      swm_unlock(lock(shard))
      if out.count == 0 {
        // every 512 blocks out: decay, with no thread cache to call it
        if firstExit &>> 9 != out.salt &>> 9 { Heap.tick() }
        return
      }
      out.leave(shard)
      out.count = 0
      out.bytes = 0
    }
  }

  /// Takes the oldest block out of shard `q` (its lock held, ring not
  /// empty); returns it with its class.
  private static func evictOldest(_ q: UnsafeMutablePointer<Shard>) -> (RawPtr, UInt32) {
    let oldest = Int((q.pointee.next &+ slots &- q.pointee.count) % slots)
    let block = q.pointee.ring[oldest]!
    q.pointee.ring[oldest] = nil
    q.pointee.count &-= 1
    q.pointee.exits &+= 1
    let sizeClass = smallClass(of: block)
    q.pointee.bytes &-= UInt(swm_class_to_size(sizeClass))
    return (block, sizeClass)
  }

  /// Calls `body` with each quarantined block, shard by shard, ready lists
  /// included (each shard's lock held while it is walked: no allocation in
  /// `body`), for the statistics.
  static func forEach(_ body: (RawPtr) -> Void) {
    var shard = 0
    while shard < shards {
      swm_lock(lock(shard))
      let q = state(shard)
      var k: UInt = 0
      while k < q.pointee.count {
        if let block = q.pointee.ring[Int((q.pointee.next &+ slots &- q.pointee.count &+ k) % slots)] { body(block) }
        k &+= 1
      }
      forEachReady(q, body)
      swm_unlock(lock(shard))
      shard &+= 1
    }
  }

  /// Bytes in quarantine and on the ready lists, for mallinfo2 (free
  /// memory, not in use): the sum of the shards, each read under its lock.
  static func bytes() -> UInt {
    var total: UInt = 0
    var shard = 0
    while shard < shards {
      swm_lock(lock(shard))
      total &+= state(shard).pointee.bytes &+ state(shard).pointee.readyBytes
      swm_unlock(lock(shard))
      shard &+= 1
    }
    return total
  }

  /// Bytes in quarantine read without the locks (a peak estimate).
  static func bytesUnlocked() -> UInt {
    var total: UInt = 0
    var shard = 0
    while shard < shards {
      total &+= state(shard).pointee.bytes &+ state(shard).pointee.readyBytes
      shard &+= 1
    }
    return total
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

  /// Bytes at the start of a block, and at its end (the trailer's line),
  /// that the exit check always reads.
  static let checkedHead = 256
  static let checkedTail = 64
  /// Bytes of the one stretch of the rest the exit check reads, at a place
  /// drawn anew at each exit.
  static let checkedStretch = 256

  /// Whether a block that leaves reads as it was left: its last word the
  /// tag and the rest zero. A block of up to 576 bytes is read in full; a
  /// larger one in its first 256 bytes, its last 64 and one 256-byte
  /// stretch at a 64-byte line drawn from `salt`, the block and the key
  /// (so neither the same block nor an observer of exits fixes it).
  /// One or-ed difference, loops the compiler vectorizes; blocks are
  /// multiples of 16 bytes.
  @inline(__always)
  static func isIntact(_ block: RawPtr, size: Int, salt: UInt) -> Bool {
    let tag = UInt(bitPattern: block) ^ Heap.state.pointee.tagSecret
    var stray = block.load(fromByteOffset: size &- 8, as: UInt.self) ^ tag
    if size <= checkedHead &+ checkedStretch &+ checkedTail {
      return stray | zeroes(block, from: 0, to: size &- 8) == 0
    }
    stray |= zeroes(block, from: 0, to: checkedHead) | zeroes(block, from: size &- checkedTail, to: size &- 8)
    let start = stretchStart(block, size: size, salt: salt)
    return stray | zeroes(block, from: start, to: start &+ checkedStretch) == 0
  }

  /// Where the exit check's stretch starts in a block over 576 bytes.
  @inline(__always)
  static func stretchStart(_ block: RawPtr, size: Int, salt: UInt) -> Int {
    let places = UInt((size &- checkedHead &- checkedStretch &- checkedTail) / 64) &+ 1
    let r = ((UInt(bitPattern: block) ^ salt ^ Heap.state.pointee.keySecret) &* 0x9e37_79b9_7f4a_7c15) &>> 32
    return checkedHead &+ Int(r % places) &* 64
  }

  /// The or of the words of [from, to) (byte offsets, multiples of 8):
  /// zero when they all are.
  @inline(__always)
  private static func zeroes(_ block: RawPtr, from: Int, to: Int) -> UInt {
    var stray: UInt = 0
    var offset = from
    while offset < to {
      stray |= block.load(fromByteOffset: offset, as: UInt.self)
      offset &+= 8
    }
    return stray
  }
}
