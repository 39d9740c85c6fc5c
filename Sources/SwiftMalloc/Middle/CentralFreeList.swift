import CShim

// See Malloc.swift for an overview.

/// The spans of one size class that have free blocks, behind that class's
/// lock. Thread caches fetch and release blocks here in batches.
///
/// Invariants (lock held):
/// - `nonempty` holds exactly the spans of this class with `onList` set: a
///   block on the span's free list or never-used space below its end.
/// - `freeBlocks` = free-list blocks + unbumped blocks over all those spans.
/// - A span whose `used` drops to 0 stays (on `nonempty`) while fewer than
///   `keptLimit` spans of its class are kept so, so a class that cycles
///   around a span boundary does not go to the page heap each time; any
///   further empty span goes back to the page heap at once. `emptySpans`
///   counts the spans on `nonempty` with `used` 0 (a new span only while
///   fetch takes its first blocks, when no other span is listed).
struct CentralFreeList {
  var nonempty: SpanList
  var spans: UInt
  var freeBlocks: UInt
  var emptySpans: UInt
  /// Mitigations.shuffle: kernel random words for the shuffles of this
  /// class's new spans, one per span, drawn `RandomWords.count` at a time.
  var randoms: RandomWords
}

/// Random words drawn from the kernel in one getrandom call and used one at
/// a time (secure mode's heap, which cycles spans, made 12.8k calls, one per
/// new span, in 0.27 s of bench's `frag` at scale 0.3; now an eighth). Kept
/// under the lock of the list that holds it; a forked child drops what it
/// inherited (its parent would draw the same words).
///
/// Invariant: words[0 ..< left] are the unused draws (next() takes the last).
struct RandomWords {
  static let count = 8
  var words: InlineArray<8, UInt64>
  var left: Int

  /// The next unused word, drawing a new set when none is left.
  mutating func next() -> UInt64 {
    if left == 0 {
      withUnsafeMutablePointer(to: &words) { swm_sys_random_fill(UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt64.self), RandomWords.count) }
      left = RandomWords.count
    }
    left &-= 1
    return words[left]
  }
}

enum Central {
  @inline(__always)
  static func list(_ sizeClass: UInt32) -> UnsafeMutablePointer<CentralFreeList> {
    let lists = withUnsafeMutablePointer(to: &Heap.state.pointee.central) { $0 }
    return UnsafeMutableRawPointer(lists).assumingMemoryBound(to: CentralFreeList.self) + Int(sizeClass)
  }

  /// Up to `count` blocks linked through word 0, most recent first; returns
  /// the head and the number taken (0 only when memory is exhausted).
  /// `owner` (a ThreadCache.id or 0) becomes the owner of every span the
  /// blocks come from. `site`: the lists, their locks and their page heap.
  static func fetch<Site: CentralSite>(_ sizeClass: UInt32, count: UInt32, owner: UInt32,
                                       in site: Site) -> (head: RawPtr?, taken: UInt32) {
    let lock = site.lock(sizeClass)
    swm_lock(lock)
    defer { swm_unlock(lock) }
    let central = site.list(sizeClass)
    let size = UInt(swm_class_to_size(sizeClass))
    let key = linkKeyBase
    var head: RawPtr? = nil
    var taken: UInt32 = 0
    // Linking a block writes to it: fresh (bumped) blocks are taken only up
    // to one page's worth (at least one block) per fetch, so a thread cache
    // never makes pages resident that nobody has asked for yet.
    var freshBudget = max(size, OSMemory.pageSize)
    while taken < count && freshBudget >= size {
      guard let span = central.pointee.nonempty.head ?? newSpan(sizeClass, central, owner: owner, site.pageHeap) else { break }
      let before = taken
      if span.pointee.owner != owner {
        span.pointee.owner = owner
        PageMap.setSmall(span)
      }
      if span.pointee.used == 0 && central.pointee.emptySpans != 0 { central.pointee.emptySpans &-= 1 }
      if span.pointee.freeList != nil && count &- taken > 1 { prefetchBlocks(span, size: size) }
      while taken < count, let block = span.pointee.freeList {
        span.pointee.freeList = decodeLink(block, span: span, sizeClass: sizeClass, keyBase: key)
        block.storeBytes(of: head, as: RawPtr?.self)
        head = block
        taken &+= 1
      }
      let end = span.pointee.start &+ UInt(swm_class_span_objects(sizeClass)) &* size
      while taken < count && span.pointee.bumpNext < end && freshBudget >= size {
        let block = RawPtr(bitPattern: span.pointee.bumpNext)!
        span.pointee.bumpNext &+= size
        freshBudget &-= size
        block.storeBytes(of: head, as: RawPtr?.self)
        head = block
        taken &+= 1
      }
      span.pointee.used &+= UInt16(truncatingIfNeeded: taken &- before)
      if span.pointee.freeList == nil && span.pointee.bumpNext >= end {
        central.pointee.nonempty.remove(span)
        span.pointee.onList = false
      }
    }
    central.pointee.freeBlocks &-= UInt(taken)
    return (head, taken)
  }

  /// Starts loading the first line of every block below `bumpNext`: a span's
  /// free list is in the order its blocks were freed, so following it is a
  /// chain of cache misses, one per block, each waiting for the last; with
  /// the lines requested at once the misses overlap (docs/design.md).
  @inline(__always)
  static func prefetchBlocks(_ span: SpanPtr, size: UInt) {
    let step = max(size, 64)
    var address = span.pointee.start
    while address < span.pointee.bumpNext {
      swm_prefetch(RawPtr(bitPattern: address))
      address &+= step
    }
  }

  /// Gives back the first `count` blocks (or all, if fewer) of a list
  /// linked through word 0 and ending with nil; returns the rest of the list
  /// (one walk serves both the caller's cut and the release).
  @discardableResult
  static func release<Site: CentralSite>(_ sizeClass: UInt32, head: RawPtr?, count: UInt32 = .max, in site: Site) -> RawPtr? {
    let lock = site.lock(sizeClass)
    swm_lock(lock)
    defer { swm_unlock(lock) }
    let central = site.list(sizeClass)
    let key = linkKeyBase
    var cursor = head
    var n: UInt32 = 0
    while n < count, let block = cursor {
      cursor = block.load(as: RawPtr?.self)
      n &+= 1
      let span = PageMap.lookup(UInt(bitPattern: block))!
      block.storeBytes(of: encodeLink(span.pointee.freeList, at: block, keyBase: key), as: UInt.self)
      span.pointee.freeList = block
      span.pointee.used &-= 1
      if !span.pointee.onList {
        central.pointee.nonempty.push(span)
        span.pointee.onList = true
      }
      if span.pointee.used == 0 {
        if central.pointee.emptySpans < keptLimit(sizeClass) {
          central.pointee.emptySpans &+= 1
          continue
        }
        central.pointee.nonempty.remove(span)
        central.pointee.spans &-= 1
        central.pointee.freeBlocks &-= UInt(swm_class_span_objects(sizeClass))
        site.pageHeap.freeSpan(span)
      }
    }
    central.pointee.freeBlocks &+= UInt(n)
    return cursor
  }

  /// Mitigations.shuffle: every block of a new span goes on its free list in a
  /// random order (a random start and a random stride coprime with the
  /// object count walk all of them once), so allocation order within a span
  /// cannot be predicted.
  private static func shuffleIntoFreeList(_ span: SpanPtr, _ sizeClass: UInt32, _ central: UnsafeMutablePointer<CentralFreeList>) {
    let count = UInt(swm_class_span_objects(sizeClass))
    let size = UInt(swm_class_to_size(sizeClass))
    let random = UInt(central.pointee.randoms.next())
    var stride = (random &>> 32) % count | 1
    while gcd(stride, count) != 1 { stride &+= 2 }
    var index = random % count
    var k: UInt = 0
    while k < count {
      let block = RawPtr(bitPattern: span.pointee.start &+ index &* size)!
      block.storeBytes(of: encodeLink(span.pointee.freeList, at: block), as: UInt.self)
      span.pointee.freeList = block
      index = (index &+ stride) % count
      k &+= 1
    }
    span.pointee.bumpNext = span.pointee.start &+ count &* size
  }

  private static func gcd(_ a: UInt, _ b: UInt) -> UInt {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return x
  }

  /// Empty spans a class keeps: one; with the quarantine, as many as one of
  /// its batches can empty (up to Quarantine.batch blocks and about
  /// Quarantine.batchBytes), since its blocks come back a batch at a time
  /// and are taken again one by one, and in secure mode a span costs two
  /// guard-page system calls to make and to give back.
  @inline(__always)
  static func keptLimit(_ sizeClass: UInt32) -> UInt {
    if !Heap.state.pointee.mitigations.quarantine { return 1 }
    let objects = UInt(swm_class_span_objects(sizeClass))
    let blocks = min(Quarantine.batch, Quarantine.batchBytes / UInt(swm_class_to_size(sizeClass)) &+ 1)
    return (blocks &+ objects &- 1) / objects &+ 1
  }

  /// malloc_trim: the empty spans each class keeps go to the page heap.
  static func releaseEmptySpans<Site: CentralSite>(in site: Site) {
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      let lock = site.lock(c)
      swm_lock(lock)
      let central = site.list(c)
      var cursor = central.pointee.emptySpans != 0 ? central.pointee.nonempty.head : nil
      while let span = cursor {
        cursor = span.pointee.next
        if span.pointee.used != 0 { continue }
        central.pointee.nonempty.remove(span)
        central.pointee.spans &-= 1
        central.pointee.freeBlocks &-= UInt(swm_class_span_objects(c))
        site.pageHeap.freeSpan(span)
      }
      central.pointee.emptySpans = 0
      swm_unlock(lock)
      c &+= 1
    }
  }

  // MARK: - free-list links inside spans
  //
  // A block on a span's free list holds its successor encoded with the
  // process secret and its own address, so a stray write into a free block
  // (or a forged pointer) is caught when the link is followed instead of
  // handing out arbitrary memory.

  /// The per-process part of every link key (loops read it once: `keyBase`).
  @inline(__always)
  static var linkKeyBase: UInt { Heap.state.pointee.keySecret &* 0x9E37_79B9_7F4A_7C15 }

  @inline(__always)
  static func encodeLink(_ next: RawPtr?, at block: RawPtr, keyBase: UInt = linkKeyBase) -> UInt {
    UInt(bitPattern: next) ^ keyBase ^ UInt(bitPattern: block)
  }

  @inline(__always)
  static func decodeLink(_ block: RawPtr, span: SpanPtr, sizeClass: UInt32, keyBase: UInt = linkKeyBase) -> RawPtr? {
    let next = block.load(as: UInt.self) ^ keyBase ^ UInt(bitPattern: block)
    if next != 0 && swm_class_is_block_start(sizeClass, UInt64(next &- span.pointee.start)) == 0 {
      Diagnostics.fatal("malloc()", "corrupted free list (write after free?) at", block)
    }
    return RawPtr(bitPattern: next)
  }

  private static func newSpan<Pages: PageHeapSite>(_ sizeClass: UInt32, _ central: UnsafeMutablePointer<CentralFreeList>,
                                                   owner: UInt32, _ pageHeap: PageHeap<Pages>) -> SpanPtr? {
    let mitigations = Heap.state.pointee.mitigations
    let pages = UInt(swm_class_span_pages(sizeClass))
    guard let span = pageHeap.allocateSpan(pages: pages, guardPage: mitigations.guardPages) else { return nil }
    span.pointee.freeList = nil
    span.pointee.bumpNext = span.pointee.start
    if mitigations.shuffle { shuffleIntoFreeList(span, sizeClass, central) }
    span.pointee.used = 0
    span.pointee.sizeClass = UInt8(sizeClass)
    span.pointee.kind = SpanKind.small
    span.pointee.owner = owner
    PageMap.setSmall(span)
    span.pointee.onList = true
    central.pointee.nonempty.push(span)
    central.pointee.spans &+= 1
    central.pointee.freeBlocks &+= UInt(swm_class_span_objects(sizeClass))
    return span
  }
}
