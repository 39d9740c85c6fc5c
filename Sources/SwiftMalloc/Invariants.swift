import CShim

// See Malloc.swift for an overview.

#if SWM_INVARIANTS
/// The invariants written at each structure, checked by walking them: the
/// page heap's free lists, every central list and the page map's facts for
/// their spans, and the quarantine. Compiled only into the builds for tests
/// and the fuzzer (-D SWM_INVARIANTS: the hosted SwiftPM build and
/// build/libswiftmalloc-check.a), never into the shipped library. Takes
/// each lock in turn; a broken invariant stops the process with one line
/// naming it and the span.
enum Invariants {
  static func check() {
    Heap.ensureInitialized()
    checkPageHeap(Heap.pageHeap)
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      checkCentral(c, in: ProcessCentral())
      c &+= 1
    }
    checkQuarantine()
  }

  private static func fail(_ what: StaticString, _ span: SpanPtr?) -> Never {
    Diagnostics.fatal("invariant", what, span.map { UnsafeRawPointer($0) })
  }

  /// PageHeap: every free span is on the list of its length, named by its
  /// first and last page, not guarded, with no free neighbour of the same
  /// origin; freeBytes and cleanBytes are the sums. Any page heap: the
  /// process's, or one a unit test built over a buffer.
  static func checkPageHeap<Site: PageHeapSite>(_ heap: PageHeap<Site>) {
    swm_lock(heap.lock)
    defer { swm_unlock(heap.lock) }
    var free: UInt = 0
    var clean: UInt = 0
    var n = 0
    while n <= PageHeapState.exactLists {
      var cursor = heap.lists[n].head
      while let span = cursor {
        if span.pointee.kind != SpanKind.free || span.pointee.guarded { fail("free list holds a span that is not free:", span) }
        let pages = span.pointee.pages
        if n == 0 ? pages <= UInt(PageHeapState.exactLists) : pages != UInt(n) { fail("free span on the wrong list:", span) }
        if PageMap.lookup(span.pointee.start) != span || PageMap.lookup(span.pointee.end &- 1) != span {
          fail("free span not named by its edges in the page map:", span)
        }
        if let left = PageMap.lookup(span.pointee.start &- 1), left.pointee.kind == SpanKind.free,
           left.pointee.end == span.pointee.start, left.pointee.fromSbrk == span.pointee.fromSbrk {
          fail("free span not coalesced with its left neighbour:", span)
        }
        free &+= span.pointee.bytes
        if span.pointee.dirtyTo > pages { fail("free span's dirty extent runs past its end:", span) }
        clean &+= span.pointee.bytes &- span.pointee.dirtyBytes
        cursor = span.pointee.next
      }
      n &+= 1
    }
    if free != heap.state.pointee.freeBytes || clean != heap.state.pointee.cleanBytes {
      fail("page heap byte counts differ from its free spans", nil)
    }
    if heap.state.pointee.heapBytes < free { fail("page heap holds fewer bytes than it has free", nil) }
    // secure mode's kept guarded spans (PageHeap+GuardedPool.swift)
    var kept: UInt = 0
    for n in 1..<PageHeapState.guardedListCount {
      var cursor = heap.guardedList(UInt(n)).pointee.head
      while let span = cursor {
        if span.pointee.kind != SpanKind.pooled || !span.pointee.guarded || span.pointee.pages != UInt(n) {
          fail("kept guarded span that is not one:", span)
        }
        kept &+= heap.keptBytes(span)
        cursor = span.pointee.next
      }
    }
    if kept != heap.state.pointee.guardedBytes { fail("kept guarded bytes differ from the kept spans", nil) }
  }

  /// CentralFreeList: `nonempty` holds spans of this class with `onList` set
  /// and a free or unbumped block; freeBlocks is their sum; every page of
  /// each span carries the span's facts; `emptySpans` counts its empty
  /// spans, at most keptLimit. Any central lists: the process's, or a unit
  /// test's.
  static func checkCentral<Site: CentralSite>(_ sizeClass: UInt32, in site: Site) {
    let lock = site.lock(sizeClass)
    swm_lock(lock)
    defer { swm_unlock(lock) }
    let central = site.list(sizeClass)
    let size = UInt(swm_class_to_size(sizeClass))
    let objects = UInt(swm_class_span_objects(sizeClass))
    var freeBlocks: UInt = 0
    var empty: UInt = 0
    var cursor = central.pointee.nonempty.head
    while let span = cursor {
      if span.pointee.kind != SpanKind.small || UInt32(span.pointee.sizeClass) != sizeClass || !span.pointee.onList {
        fail("central list holds a span of another kind or class:", span)
      }
      let end = span.pointee.start &+ objects &* size
      var onFreeList: UInt = 0
      var block = span.pointee.freeList
      while let b = block {
        onFreeList &+= 1
        if onFreeList > objects { fail("span free list longer than the span:", span) }
        block = Central.decodeLink(b, span: span, sizeClass: sizeClass)
      }
      let unbumped = (end &- span.pointee.bumpNext) / size
      if onFreeList &+ unbumped &+ UInt(span.pointee.used) != objects { fail("span block counts do not add up:", span) }
      if span.pointee.used == 0 { empty &+= 1 }
      checkFacts(span)
      freeBlocks &+= onFreeList &+ unbumped
      cursor = span.pointee.next
    }
    if freeBlocks != central.pointee.freeBlocks { fail("central freeBlocks differs from its spans", nil) }
    if empty != central.pointee.emptySpans || empty > Central.keptLimit(sizeClass) {
      fail("the central list keeps more empty spans than it counts or may keep", nil)
    }
  }

  /// Every page of a small span names it and carries its class, offset and owner.
  private static func checkFacts(_ span: SpanPtr) {
    var offset: UInt = 0
    while offset < span.pointee.bytes &- (span.pointee.guarded ? OSMemory.pageSize : 0) {
      let address = span.pointee.start &+ offset
      guard PageMap.lookup(address) == span, let facts = PageMap.smallFacts(address) else {
        fail("small span page not named in the page map:", span)
      }
      if facts.sizeClass != UInt32(span.pointee.sizeClass) || facts.pageOffset != offset || facts.owner != span.pointee.owner {
        fail("small span page facts differ from the span:", span)
      }
      offset &+= OSMemory.pageSize
    }
  }

  /// Quarantine: each shard at most `slots` blocks, all small; its bytes
  /// the sum of their sizes.
  private static func checkQuarantine() {
    var shard = 0
    while shard < Quarantine.shards {
      let lock = Quarantine.lock(shard)  // not `shard`: the defer runs after shard += 1
      swm_lock(lock)
      defer { swm_unlock(lock) }
      let q = Quarantine.state(shard)
      if q.pointee.count > Quarantine.slots { fail("quarantine holds more blocks than slots", nil) }
      var bytes: UInt = 0
      var k: UInt = 0
      while k < q.pointee.count {
        let slot = Int((q.pointee.next &+ Quarantine.slots &- q.pointee.count &+ k) % Quarantine.slots)
        guard let block = q.pointee.ring[slot], let span = PageMap.lookup(UInt(bitPattern: block)),
              span.pointee.kind == SpanKind.small else { fail("quarantine holds a block that is not small", nil) }
        bytes &+= UInt(swm_class_to_size(UInt32(span.pointee.sizeClass)))
        k &+= 1
      }
      if bytes != q.pointee.bytes { fail("quarantine byte count differs from its blocks", nil) }
      checkReady(q)
      shard &+= 1
    }
  }

  /// A shard's ready lists: readyCount[c] <= readyDepth small blocks of
  /// class c each; readyBytes their sum, within readyMaxBytes.
  private static func checkReady(_ q: UnsafeMutablePointer<Quarantine.Shard>) {
    var bytes: UInt = 0
    var c = 1
    while c < Int(SWM_NUM_CLASSES) {
      if q.pointee.readyCount[c] > Quarantine.readyDepth { fail("quarantine ready list over its depth", nil) }
      var k = 0
      while k < Int(q.pointee.readyCount[c]) {
        guard let block = q.pointee.ready[c &* Int(Quarantine.readyDepth) &+ k],
              let span = PageMap.lookup(UInt(bitPattern: block)), span.pointee.kind == SpanKind.small,
              Int(span.pointee.sizeClass) == c else { fail("quarantine ready list holds a wrong block", nil) }
        bytes &+= UInt(swm_class_to_size(UInt32(c)))
        k &+= 1
      }
      c &+= 1
    }
    if bytes != q.pointee.readyBytes || bytes > Quarantine.readyMaxBytes { fail("quarantine ready bytes differ", nil) }
  }
}

/// For tests and the fuzzer: walks every structure, aborts on a broken invariant.
@c(swm_check_invariants)
public func swm_check_invariants() {
  Invariants.check()
}
#endif
