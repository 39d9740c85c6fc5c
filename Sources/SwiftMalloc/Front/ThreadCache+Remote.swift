import CShim

// See Malloc.swift for an overview.

/// Blocks this thread freed from spans another cache owns, all for one
/// owner (`destination`, a ThreadCache.id), linked through word 0, most
/// recent first. Sent to that owner's inbox a batch at a time (one atomic
/// operation per batch), sooner when the thread's lists together pass
/// Remote.outgoingLimit, or to the central list when it has no inbox.
///
/// Invariants: `count` is the length of the list; `tail` is its last block
/// (nil exactly when the list is empty); `destination` is meaningful only
/// while the list is not empty; the cache's Header.outgoingHeld is the sum
/// of count x block size over its lists.
struct Outgoing {
  var head: RawPtr?
  var tail: RawPtr?
  var count: UInt32
  var destination: UInt32
}

/// Where other threads send the blocks they free from this cache's spans
/// (snmalloc's and mimalloc's message passing, in our own shape): one
/// multi-producer list per size class, pushed with a compare-and-swap of a
/// whole batch (its tail linked to the old head) and taken whole with one
/// exchange, so no lock is held and no Span is touched on either side. The
/// owner takes its lists on its slow paths (the class it refills, and every
/// class whose bit is set in `pending`) into its bins; thread exit closes
/// them (`closed`), and any thread may steal the lists of an idle cache for
/// the central lists (Remote.reclaimIdle). Taking by exchange is safe with
/// any number of takers, so none needs a lock; a push never succeeds on a
/// closed list (it goes to the central list instead).
///
/// An inbox list holds at most twice what the owner's bin may
/// (`inboxFactor` times its limit, which Budget keeps within the thread's
/// share): a sender that finds it full gives its batch to the central list
/// instead, so blocks do not pile up behind an owner that takes them slower
/// than they come, where no other thread could reuse them. Twice, not once:
/// a consumer frees in bursts (xmalloc-test: 4096 blocks of one producer at
/// a time), and with the bin's limit a third of its blocks found the inbox
/// full and went through the central list and back (rtime 1.14 -> 1.05;
/// four times, 1.05). (Four batches whatever the limit let 300 idle threads
/// hold 5-40 KiB each in inboxes and outgoing lists past a 16 KiB share,
/// Tests/C/memory.c; with twice the limit 2-4 KiB, and 12-17 KiB after
/// freeing a neighbour's blocks, against 1-2.5 and 10-15 with once. The
/// outgoing lists are bounded apart: Remote.outgoingLimit.)
///
/// Invariants: `heads[c]` is 0 (empty), `closed`, or the head of a list of
/// free blocks of class c (word 1 of each holds its freed tag) linked
/// through word 0 and ending with nil; `counts[c]` is at most the list's
/// length plus the batches in flight (a sender adds before its push and
/// takes back what a closed list refused; every take resets it, so a push
/// that lands after the reset is counted short until the next take); bit c
/// of `pending` is set after a push to heads[c],
/// cleared by the one who takes it; `limits[c]` is written by the owner
/// with bin c's limit (Remote.setLimit), read racily by senders.
struct Inbox {
  var pending: UInt
  var heads: ClassArray<UInt>
  var counts: ClassArray<UInt>
  var limits: ClassArray<UInt32>

  /// The value of a closed list: the cache's thread has exited.
  static let closed: UInt = 1
}

enum Remote {
  @inline(__always)
  static func inbox(_ cache: RawPtr) -> UnsafeMutablePointer<Inbox> {
    (cache + ThreadCache.inboxOffset).assumingMemoryBound(to: Inbox.self)
  }

  @inline(__always)
  static func head(_ inbox: UnsafeMutablePointer<Inbox>, _ sizeClass: UInt32) -> UnsafeMutablePointer<UInt> {
    UnsafeMutableRawPointer(inbox).advanced(by: MemoryLayout<UInt>.stride &* (1 &+ Int(sizeClass)))
      .assumingMemoryBound(to: UInt.self)
  }

  @inline(__always)
  static func count(_ inbox: UnsafeMutablePointer<Inbox>, _ sizeClass: UInt32) -> UnsafeMutablePointer<UInt> {
    head(inbox, sizeClass) + Int(SWM_NUM_CLASSES)
  }

  /// The most bytes a thread's outgoing lists hold together: past it,
  /// every list goes out. A thread that goes idle keeps its outgoing lists
  /// (only it may touch them), so they are kept short: a bound per list
  /// (a batch, or 4 KiB) let each of 300 idle threads that had freed just
  /// under it in each of 27 classes for a neighbour keep 75-82 KiB in use
  /// (a hostile test; 7 KiB with this bound).
  static let outgoingLimit: UInt = 8 << 10

  /// An inbox list holds at most this many times its owner's bin limit.
  static let inboxFactor: UInt32 = 2

  /// What an inbox list may hold: inboxFactor times what the owner's bin
  /// may (nothing for a class it does not allocate).
  static func setLimit(_ cache: RawPtr, _ sizeClass: UInt32, binLimit: UInt32) {
    inbox(cache).pointee.limits[Int(sizeClass)] = inboxFactor &* binLimit
  }

  /// Adds a block freed from a span of `owner` (not this cache) to the
  /// outgoing list; the list goes out when it reaches a batch or the next
  /// block is for another owner, and every list when together they pass
  /// `outgoingLimit`.
  @inline(__always)
  static func send(_ block: RawPtr, cache: RawPtr, sizeClass: UInt32, owner: UInt32) {
    if trySend(block, cache: cache, sizeClass: sizeClass, owner: owner) { return }
    let out = ThreadCache.outgoing(cache, sizeClass)
    if out.pointee.count != 0 && out.pointee.destination != owner { flush(cache, sizeClass) }
    let header = ThreadCache.header(cache)
    append(block, to: out, owner: owner, header: header, held: header.pointee.outgoingHeld &+ UInt(swm_class_to_size(sizeClass)))
    if out.pointee.count >= UInt32(swm_class_batch_size(sizeClass)) { flush(cache, sizeClass) }
    else if header.pointee.outgoingHeld > outgoingLimit { flushAll(cache) }
  }

  /// `send`'s common case, which free takes inline (a remote free through
  /// free's slow path ran 80 instructions more than a local one): the list
  /// is empty or for this owner, and the block brings it neither to a batch
  /// nor the thread's lists past outgoingLimit. False, and nothing done,
  /// otherwise. `cache` is a registered cache (ThreadCache.registered).
  @inline(__always)
  static func trySend(_ block: RawPtr, cache: RawPtr, sizeClass: UInt32, owner: UInt32) -> Bool {
    let out = ThreadCache.outgoing(cache, sizeClass)
    let header = ThreadCache.header(cache)
    let held = header.pointee.outgoingHeld &+ UInt(swm_class_to_size(sizeClass))
    let count = out.pointee.count
    if count != 0 && out.pointee.destination != owner || count &+ 1 >= UInt32(swm_class_batch_size(sizeClass))
        || held > outgoingLimit { return false }
    append(block, to: out, owner: owner, header: header, held: held)
    return true
  }

  /// Pushes `block` on `out` (empty or for `owner`) and records `held`,
  /// the thread's outgoing bytes with it.
  @inline(__always)
  private static func append(_ block: RawPtr, to out: UnsafeMutablePointer<Outgoing>, owner: UInt32,
                             header: UnsafeMutablePointer<ThreadCache.Header>, held: UInt) {
    block.storeBytes(of: out.pointee.head, as: RawPtr?.self)
    if out.pointee.count == 0 {
      out.pointee.tail = block
      out.pointee.destination = owner
    }
    out.pointee.head = block
    out.pointee.count &+= 1
    header.pointee.outgoingHeld = held
  }

  /// Sends every outgoing list of `cache`.
  @inline(never)
  static func flushAll(_ cache: RawPtr) {
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      if ThreadCache.outgoing(cache, c).pointee.count != 0 { flush(cache, c) }
      c &+= 1
    }
  }

  /// Sends the outgoing list of one class to its owner's inbox, or to the
  /// central list when the owner has none (no owner, a cache outside the
  /// region, exited) or its inbox is full.
  static func flush(_ cache: RawPtr, _ sizeClass: UInt32) {
    let out = ThreadCache.outgoing(cache, sizeClass)
    guard let head = out.pointee.head else { return }
    let sent = Meta.cache(forID: out.pointee.destination).map {
      push(inbox($0), sizeClass, head: head, tail: out.pointee.tail.unsafelyUnwrapped, count: out.pointee.count)
    } ?? false
    if !sent { Central.release(sizeClass, head: head) }
    ThreadCache.header(cache).pointee.outgoingHeld &-= UInt(out.pointee.count) &* UInt(swm_class_to_size(sizeClass))
    out.pointee.head = nil
    out.pointee.tail = nil
    out.pointee.count = 0
  }

  /// Pushes a list on an inbox; false when the inbox is closed or full.
  private static func push(_ inbox: UnsafeMutablePointer<Inbox>, _ sizeClass: UInt32, head: RawPtr, tail: RawPtr,
                           count: UInt32) -> Bool {
    let slot = Remote.head(inbox, sizeClass)
    let counter = Remote.count(inbox, sizeClass)
    var old = swm_atomic_load_relaxed(slot)
    if old == Inbox.closed { return false }
    // A count below zero (a sender that gave back its count after the slot
    // was zeroed for a new cache) reads as empty until the next take.
    let held = UInt(max(0, Int(bitPattern: swm_atomic_load_relaxed(counter))))
    if held &+ UInt(count) > UInt(inbox.pointee.limits[Int(sizeClass)]) { return false }
    // Counted before the push, so that the count never stays above what the
    // list holds (a take resets it; a push it missed is counted short until
    // the next take, which only lets the list hold a batch more).
    _ = swm_atomic_add(counter, UInt(count))
    repeat {
      if old == Inbox.closed {
        // the tail may point into a list the owner has taken since: the
        // batch goes to the central list ending where it began
        tail.storeBytes(of: nil, as: RawPtr?.self)
        _ = swm_atomic_add(counter, 0 &- UInt(count))
        return false
      }
      tail.storeBytes(of: old, as: UInt.self)
    } while !swm_atomic_cas_full(slot, &old, UInt(bitPattern: head))
    let bit: UInt = 1 &<< UInt(sizeClass)
    if swm_atomic_load_relaxed(&inbox.pointee.pending) & bit == 0 { _ = swm_atomic_or(&inbox.pointee.pending, bit) }
    return true
  }

  /// Takes the whole list of one class (nil when empty or closed); with
  /// `closing`, leaves the list closed.
  static func take(_ inbox: UnsafeMutablePointer<Inbox>, _ sizeClass: UInt32, closing: Bool = false) -> RawPtr? {
    let slot = head(inbox, sizeClass)
    var value = swm_atomic_load_relaxed(slot)
    while true {
      if value == Inbox.closed { return nil }
      if value == 0 && !closing {
        swm_atomic_store_relaxed(count(inbox, sizeClass), 0)
        return nil
      }
      if swm_atomic_cas_full(slot, &value, closing ? Inbox.closed : 0) { break }
    }
    swm_atomic_store_relaxed(count(inbox, sizeClass), 0)
    return RawPtr(bitPattern: value)
  }

  /// The owner's refill of an empty bin: the inbox list of its class, all
  /// of it up to the inbox's limit and a batch more (a count missed by a
  /// race), even beyond the bin's limit, which the bin's next overflow
  /// restores (the rest to the central list). A working set that comes
  /// back through the inbox is served from it without the central list.
  /// True when the bin got blocks.
  @inline(__always)
  static func receive(_ cache: RawPtr, _ sizeClass: UInt32, into bin: UnsafeMutablePointer<Bin>) -> Bool {
    let inbox = inbox(cache)
    if swm_atomic_load_relaxed(&inbox.pointee.pending) & (1 &<< UInt(sizeClass)) == 0 { return false }
    return receiveSlow(inbox, sizeClass, into: bin)
  }

  @inline(never)
  private static func receiveSlow(_ inbox: UnsafeMutablePointer<Inbox>, _ sizeClass: UInt32,
                                  into bin: UnsafeMutablePointer<Bin>) -> Bool {
    _ = swm_atomic_and(&inbox.pointee.pending, ~(1 &<< UInt(sizeClass)))
    guard var rest = take(inbox, sizeClass) else { return false }
    let most = bin.pointee.count &+ inboxFactor &* bin.pointee.limit
      &+ UInt32(swm_class_batch_size(sizeClass))
    while bin.pointee.count < most {
      let block = rest
      let next = block.load(as: RawPtr?.self)
      block.storeBytes(of: bin.pointee.head, as: RawPtr?.self)
      bin.pointee.head = block
      bin.pointee.count &+= 1
      guard let n = next else { return true }
      rest = n
    }
    Central.release(sizeClass, head: rest)
    return bin.pointee.head != nil
  }

  /// Gives every inbox list of `cache` to the central lists; with
  /// `closing` (thread exit, a fork child's other threads), closes them.
  static func drain(_ cache: RawPtr, closing: Bool) {
    let inbox = inbox(cache)
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      if let list = take(inbox, c, closing: closing) { Central.release(c, head: list) }
      c &+= 1
    }
    _ = swm_atomic_exchange(&inbox.pointee.pending, 0)
  }

  /// In a fork child: the inboxes of every cache but the caller's are
  /// closed and emptied (their threads do not exist here).
  static func closeOtherInboxes() {
    let mine = ThreadCache.existing()
    swm_lock(Meta.lock)
    var cursor = Budget.state.pointee.live
    swm_unlock(Meta.lock)
    while let cache = cursor {
      if cache != mine { drain(cache, closing: true) }
      cursor = ThreadCache.header(cache).pointee.next
    }
  }

  /// Runs reclaimIdle when a quarter of the decay time has passed since
  /// the last run (one thread wins the turn).
  static func tick() {
    let now = UInt(swm_now_ms())
    let last = swm_atomic_load_relaxed(&Budget.state.pointee.lastReclaim)
    if now &- last < Heap.pageHeap.state.pointee.decayMilliseconds / 4 { return }
    if swm_atomic_cas_weak(&Budget.state.pointee.lastReclaim, last, now) != 0 { reclaimIdle() }
  }

  /// Steals, for the central lists, the inbox lists nobody has taken for a
  /// while: every list of a cache whose thread has taken no slow path since
  /// the last call (idle, or blocked for good), and any list that was
  /// waiting at the last call too (a class its owner no longer allocates),
  /// so what other threads freed is not pinned behind its owner. Called
  /// with the decay (Remote.tick, the background purge). The owner may take
  /// its lists meanwhile: both sides take by exchange. The lists are taken
  /// and joined per class under the meta lock (which keeps the caches
  /// listed), and given back after it (the class locks come before it).
  static func reclaimIdle() {
    var stolen = ClassArray<RawPtr?>(repeating: nil)
    swm_lock(Meta.lock)
    var cursor = Budget.state.pointee.live
    while let cache = cursor {
      let header = ThreadCache.header(cache)
      let inbox = inbox(cache)
      let pending = swm_atomic_load_relaxed(&inbox.pointee.pending)
      let idle = header.pointee.slowPaths == header.pointee.slowPathsAtReclaim
      var stale = idle ? pending : pending & header.pointee.pendingAtReclaim
      header.pointee.slowPathsAtReclaim = header.pointee.slowPaths
      header.pointee.pendingAtReclaim = pending & ~stale
      if stale != 0 { _ = swm_atomic_and(&inbox.pointee.pending, ~stale) }
      while stale != 0 {
        let sizeClass = UInt32(stale.trailingZeroBitCount)
        stale &= stale &- 1
        if let list = take(inbox, sizeClass) { join(list, onto: &stolen[Int(sizeClass)]) }
      }
      cursor = header.pointee.next
    }
    swm_unlock(Meta.lock)
    var c = 1
    while c < Int(SWM_NUM_CLASSES) {
      if let list = stolen[c] { Central.release(UInt32(c), head: list) }
      c &+= 1
    }
  }

  /// Puts `list` (ending with nil) in front of `onto`.
  private static func join(_ list: RawPtr, onto: inout RawPtr?) {
    var last = list
    while let next = last.load(as: RawPtr?.self) { last = next }
    last.storeBytes(of: onto, as: RawPtr?.self)
    onto = list
  }
}
