import Testing
@testable import SwiftMalloc
import CShim
import Glibc

/// The page heap alone: each test builds a PageHeap of its own over a 16 MiB
/// buffer (BufferPages plays the OS), never touching the process's heap, so
/// these tests need no serialization. The page map and the metadata arena
/// are shared with the process's heap (they are indexed by address, and the
/// buffer's pages are this test's own).

/// What the page heap asked of its source, and the source's settings.
final class BufferLog {
  let base: UInt
  let bytes: UInt
  /// The end of what has been handed out (the buffer's "break").
  var top: UInt
  var regions: [(start: UInt, bytes: UInt)] = []
  var shrinks: [UInt] = []
  var decommits: [(start: UInt, bytes: UInt)] = []
  var guardsInstalled: [UInt] = []
  var guardsRemoved: [UInt] = []
  var growths = 0
  /// The injected clock (ms).
  var clock: UInt = 0
  /// Refuse shrinkTop, as when another allocator moved the break.
  var refuseShrink = false

  init(base: UInt, bytes: UInt) {
    self.base = base
    self.bytes = bytes
    top = base
  }
}

/// A page source over one buffer: regions are handed out from its start
/// upwards like an sbrk heap (so consecutive regions are neighbours), the
/// top can be given back, and decommits really discard the pages (madvise),
/// so what the page heap calls clean reads zero.
struct BufferPages: PageSource {
  let log: BufferLog

  func grow(bytes: UInt, pad: UInt) -> OSMemory.Region? {
    let left = log.base + log.bytes - log.top
    guard bytes <= left, pad <= left - bytes else { return nil }
    let length = (bytes + pad + OSMemory.pageMask) & ~OSMemory.pageMask
    if length > left { return nil }
    let region = OSMemory.Region(start: log.top, bytes: length, fromSbrk: true)
    log.top += length
    log.regions.append((region.start, region.bytes))
    return region
  }
  var topEnd: UInt { log.top }
  func shrinkTop(to newEnd: UInt) -> Bool {
    if log.refuseShrink || newEnd >= log.top || newEnd < log.base { return false }
    log.shrinks.append(newEnd)
    _ = swm_sys_decommit(RawPtr(bitPattern: newEnd), Int(log.top - newEnd))  // handed out again, it reads zero
    log.top = newEnd
    return true
  }
  func decommit(_ start: UInt, bytes: UInt) {
    log.decommits.append((start, bytes))
    _ = swm_sys_decommit(RawPtr(bitPattern: start), Int(bytes))
  }
  func installGuard(_ start: UInt, bytes: UInt) -> Bool { log.guardsInstalled.append(start); return true }
  func removeGuard(_ start: UInt, bytes: UInt) -> Bool { log.guardsRemoved.append(start); return true }
  func now() -> UInt { log.clock }
  func grew() { log.growths += 1 }
}

/// A page heap's site of its own: the state, lock and source a test built.
struct BufferSite: PageHeapSite {
  let state: UnsafeMutablePointer<PageHeapState>
  let lock: UnsafeMutablePointer<swm_lock_t>
  let source: BufferPages
}

/// A page heap over a fresh 16 MiB mapping (unused pages on either side, so
/// no other heap's span is ever its neighbour), with its own state and
/// lock. The buffer starts one page past a 64 KiB boundary, so that where
/// an aligned run lands is known. `close()` clears its pages from the page
/// map and unmaps it.
struct TestPageHeap {
  static let page: UInt = 4096
  static let align: UInt = 64 << 10
  let heap: PageHeap<BufferSite>
  let log: BufferLog
  private let mapping: UnsafeMutableRawPointer
  private let mappingBytes: Int

  init(bytes: UInt = 16 << 20, trimThreshold: UInt = 1 << 40, topPad: UInt = 0, dirtyLimit: UInt = 1 << 40,
       decay: UInt = 1000) {
    mappingBytes = Int(bytes + 2 * Self.page + Self.align)
    mapping = mmap(nil, mappingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    let aligned = (UInt(bitPattern: mapping) + Self.align - 1) & ~(Self.align - 1)
    log = BufferLog(base: aligned + Self.page, bytes: bytes)
    let state = UnsafeMutablePointer<PageHeapState>.allocate(capacity: 1)
    UnsafeMutableRawPointer(state).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<PageHeapState>.size)
    let lock = UnsafeMutablePointer<swm_lock_t>.allocate(capacity: 1)
    UnsafeMutableRawPointer(lock).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<swm_lock_t>.size)
    heap = PageHeap(site: BufferSite(state: state, lock: lock, source: BufferPages(log: log)))
    heap.site.configure(trimThreshold: trimThreshold, topPad: topPad, dirtyLimit: dirtyLimit, decay: decay)
  }

  /// Every free span, in address order.
  func freeSpans() -> [SpanPtr] {
    var spans: [SpanPtr] = []
    for n in 0...PageHeapState.exactLists {
      var cursor = heap.lists[n].head
      while let s = cursor { spans.append(s); cursor = s.pointee.next }
    }
    return spans.sorted { $0.pointee.start < $1.pointee.start }
  }

  /// Spans of these many pages, each required to start where the last
  /// one ends (the premise of a test about neighbours: required, not hoped for).
  func neighbours(_ counts: UInt...) throws -> [SpanPtr] {
    var spans: [SpanPtr] = []
    for pages in counts {
      let span = try #require(heap.allocateSpan(pages: pages))
      if let last = spans.last { try #require(span.pointee.start == last.pointee.end) }
      spans.append(span)
    }
    return spans
  }

  var freeBytes: UInt { heap.state.pointee.freeBytes }
  var dirtyBytes: UInt { heap.state.pointee.dirtyBytes }
  func pages(_ n: UInt) -> UInt { n * Self.page }

  func close() {
    for span in freeSpans() { Meta.freeSpan(span) }
    _ = PageMap.set(log.base, pages: log.bytes / Self.page, to: nil)
    munmap(mapping, mappingBytes)
    heap.state.deallocate()
    heap.lock.deallocate()
  }
}

@Suite struct PageHeapTests {
  @Test func splitServesNeighboursFromOneRegion() throws {
    let t = TestPageHeap(topPad: 60 * 4096)
    defer { t.close() }
    let a = try #require(t.heap.allocateSpan(pages: 4))
    // one region of the 4 pages plus the pad, the rest of it free and clean
    #expect(t.log.regions.count == 1 && t.log.regions[0].start == t.log.base && t.log.regions[0].bytes == t.pages(64))
    #expect(t.log.growths == 1)
    #expect(a.pointee.start == t.log.base && a.pointee.pages == 4)
    for k in 0..<4 { #expect(PageMap.lookup(a.pointee.start + UInt(k) * 4096) == a) }
    #expect(t.freeBytes == t.pages(60) && t.dirtyBytes == 0)
    let rest = try #require(PageMap.lookup(a.pointee.end))
    #expect(rest.pointee.kind == SpanKind.free && rest.pointee.start == a.pointee.end && rest.pointee.pages == 60)
    #expect(PageMap.lookup(t.log.base + t.pages(64) - 1) == rest)
    // the next spans are cut from that rest, each right after the last
    let b = try #require(t.heap.allocateSpan(pages: 8))
    let c = try #require(t.heap.allocateSpan(pages: 3))
    #expect(b.pointee.start == a.pointee.end && c.pointee.start == b.pointee.end)
    #expect(t.log.regions.count == 1 && t.freeBytes == t.pages(49))
    Invariants.checkPageHeap(t.heap)
    for s in [a, b, c] { t.heap.freeSpan(s) }
    Invariants.checkPageHeap(t.heap)
  }

  @Test func freeCoalescesWithBothNeighbours() throws {
    let t = TestPageHeap(topPad: 60 * 4096)
    defer { t.close() }
    let spans = try t.neighbours(4, 4, 4)
    let (a, b, c) = (spans[0], spans[1], spans[2])
    let (aStart, bStart, cStart) = (a.pointee.start, b.pointee.start, c.pointee.start)
    t.heap.freeSpan(a)  // b is in use: a stays a span of its own
    #expect(t.freeSpans().map { $0.pointee.pages } == [4, 52])
    t.heap.freeSpan(c)  // merges with the free rest on its right
    let right = try #require(PageMap.lookup(cStart))
    #expect(right.pointee.start == cStart && right.pointee.pages == 56)
    #expect(t.freeSpans().map { $0.pointee.pages } == [4, 56])
    t.heap.freeSpan(b)  // merges with both: the whole region is one span again
    let whole = try #require(PageMap.lookup(aStart))
    #expect(whole.pointee.kind == SpanKind.free && whole.pointee.start == aStart && whole.pointee.pages == 64)
    #expect(PageMap.lookup(aStart + t.pages(64) - 1) == whole && PageMap.lookup(bStart) == whole)
    #expect(t.freeSpans() == [whole] && t.freeBytes == t.pages(64))
    Invariants.checkPageHeap(t.heap)
  }

  @Test func dirtyBytesDecayWithTheInjectedClock() throws {
    let t = TestPageHeap(topPad: 16 * 4096, decay: 1000)
    defer { t.close() }
    let spans = try t.neighbours(4, 4, 4)
    let (a, b, c) = (spans[0], spans[1], spans[2])
    let bStart = b.pointee.start
    #expect(t.freeBytes == t.pages(8) && t.dirtyBytes == 0)  // fresh memory is clean
    t.log.clock = 100
    t.heap.freeSpan(a)  // handed out, so dirty
    #expect(t.freeBytes == t.pages(12) && t.dirtyBytes == t.pages(4))
    t.log.clock = 700  // a has been free 600 ms of 1000: it stays
    t.heap.tick()
    #expect(t.log.decommits.isEmpty && t.dirtyBytes == t.pages(4))
    t.log.clock = 1100  // 1000 ms: decommitted, once
    t.heap.tick()
    #expect(t.log.decommits.count == 1)
    #expect(t.log.decommits.first?.start == a.pointee.start && t.log.decommits.first?.bytes == t.pages(4))
    #expect(t.dirtyBytes == 0 && t.heap.state.pointee.madviseCalls == 1 && t.heap.state.pointee.decays == 1)
    // b merges with the clean a: only b's pages are dirty
    t.log.clock = 1300
    t.heap.freeSpan(b)
    #expect(t.freeSpans().map { $0.pointee.pages } == [8, 8] && t.dirtyBytes == t.pages(4))
    // beyond the dirty limit, what is over it (less an eighth of it) goes back
    // at once: 8 dirty pages (b and c) against 4, so 5 of them, the lowest
    t.heap.site.configure(trimThreshold: nil, topPad: nil, dirtyLimit: t.pages(4))
    t.heap.freeSpan(c)
    #expect(t.freeSpans().map { $0.pointee.pages } == [20] && t.dirtyBytes == t.pages(3))
    #expect(t.log.decommits.count == 2 && t.log.decommits.last?.start == bStart
            && t.log.decommits.last?.bytes == t.pages(5))
    #expect(t.heap.state.pointee.decays == 2)
    Invariants.checkPageHeap(t.heap)
  }

  /// One dirty extent per free span: a run freed next to decommitted pages
  /// makes only its own pages dirty, a pass over the dirty cap decommits
  /// only what is over (not the whole merged span, as a single "clean" flag
  /// did: malloc-large then faulted in 0.67M pages for glibc's 0.51M), a
  /// long request goes where pages are resident, and a zeroed run reads zero
  /// with only its dirty pages cleared.
  @Test func dirtyExtentsCountOnlyWhatWasTouched() throws {
    let t = TestPageHeap(topPad: 0, dirtyLimit: 1 << 40)
    defer { t.close() }
    let guardRun = try #require(t.heap.allocateSpan(pages: 1000))
    let fence = try #require(t.heap.allocateSpan(pages: 1))  // keeps the 1000 pages off the top
    t.heap.freeSpan(guardRun)
    #expect(t.dirtyBytes == t.pages(1000))
    swm_lock(t.heap.lock)
    _ = t.heap.decommit(keeping: 0, olderThan: nil)
    swm_unlock(t.heap.lock)
    #expect(t.dirtyBytes == 0)
    // 200 pages written and freed: they merge with 800 clean pages
    let p = try #require(t.heap.allocateRun(t.pages(200), alignment: TestPageHeap.page, zeroed: nil, guardPage: false))
    p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: Int(t.pages(200)))
    t.heap.freeSpan(try #require(PageMap.lookup(UInt(bitPattern: p))))
    #expect(t.freeSpans().map { $0.pointee.pages } == [1000] && t.dirtyBytes == t.pages(200))
    Invariants.checkPageHeap(t.heap)
    // a long request is served from the resident pages, and zeroed
    let q = try #require(t.heap.allocateRun(t.pages(150), alignment: TestPageHeap.page, zeroed: true, guardPage: false))
    #expect(q == p)
    let bytes = UnsafeRawBufferPointer(start: q, count: Int(t.pages(150)))
    #expect(bytes.allSatisfy { $0 == 0 })
    #expect(t.dirtyBytes == t.pages(50))
    t.heap.freeSpan(try #require(PageMap.lookup(UInt(bitPattern: q))))
    #expect(t.dirtyBytes == t.pages(200))
    // the cap cut to 100 pages (fixed): 200 dirty, so 200 - 87.5 -> 113 pages go, the lowest
    let decommitsBefore = t.log.decommits.count
    t.heap.site.configure(trimThreshold: nil, topPad: nil, dirtyLimit: t.pages(100), fixed: true)
    let r = try #require(t.heap.allocateSpan(pages: 1))
    t.heap.freeSpan(r)  // a release runs the cap check
    #expect(t.log.decommits.count == decommitsBefore + 1)
    #expect(t.log.decommits.last?.start == UInt(bitPattern: p) && t.log.decommits.last?.bytes == t.pages(113))
    #expect(t.dirtyBytes == t.pages(87))
    Invariants.checkPageHeap(t.heap)
    t.heap.freeSpan(fence)
  }

  /// Secure mode's small spans come back with their guard page in place
  /// and are kept for the next span of their length: no guard-page system
  /// call either way; a run no free span holds gets the kept spans back
  /// (guards removed) before the heap grows; so does malloc_trim.
  @Test func guardedSpansAreKeptForReuse() throws {
    let t = TestPageHeap(topPad: 0)
    defer { t.close() }
    let a = try #require(t.heap.allocateSpan(pages: 4, guardPage: true))
    let aStart = a.pointee.start
    #expect(a.pointee.guarded && a.pointee.pages == 5 && t.log.guardsInstalled.count == 1)
    a.pointee.kind = SpanKind.small
    t.heap.freeSpan(a)
    #expect(t.log.guardsRemoved.isEmpty && t.heap.state.pointee.guardedBytes == t.pages(4))
    #expect(PageMap.lookup(aStart)?.pointee.kind == SpanKind.pooled)
    let b = try #require(t.heap.allocateSpan(pages: 4, guardPage: true))
    #expect(b.pointee.start == aStart && b.pointee.guarded && t.log.guardsInstalled.count == 1)
    #expect(t.heap.state.pointee.guardedBytes == 0)
    // a shorter span: the kept ones are given back (guard removed) before the heap grows
    b.pointee.kind = SpanKind.small
    t.heap.freeSpan(b)
    let grown = t.log.growths
    let c = try #require(t.heap.allocateSpan(pages: 1, guardPage: true))
    #expect(c.pointee.start == aStart && c.pointee.pages == 2 && t.log.growths == grown)
    #expect(t.log.guardsRemoved.count == 1 && t.log.guardsInstalled.count == 2)
    #expect(t.heap.state.pointee.guardedBytes == 0)
    Invariants.checkPageHeap(t.heap)
    // malloc_trim gives the kept spans back, guard removed
    c.pointee.kind = SpanKind.small
    t.heap.freeSpan(c)
    #expect(t.heap.state.pointee.guardedBytes == t.pages(1))
    _ = t.heap.trim(pad: 0)
    #expect(t.heap.state.pointee.guardedBytes == 0 && t.log.guardsRemoved.count == 2)
    Invariants.checkPageHeap(t.heap)
  }

  /// Secure mode (dirtyWithinPeak): in use plus dirty stays within the
  /// peak in use plus an eighth of the small spans' peak (at least 1 MiB);
  /// page runs do not add to that eighth.
  @Test func secureFreePagesStayWithinThePeakPlusAnEighthOfTheSmallSpans() throws {
    let t = TestPageHeap(bytes: 64 << 20, topPad: 0, dirtyLimit: 1 << 40)
    defer { t.close() }
    t.heap.site.configure(trimThreshold: nil, topPad: nil, withinPeak: true)
    #expect(t.heap.spanSlack == PageHeapState.peakSlack)
    // 24 MiB of small spans: the slack is 3 MiB
    var spans: [SpanPtr] = []
    for _ in 0..<96 {
      let span = try #require(t.heap.allocateSpan(pages: 64))
      span.pointee.kind = SpanKind.small
      spans.append(span)
    }
    #expect(t.heap.spanSlack == 3 << 20)
    // every other one freed (no two free spans meet): 12 MiB dirty, kept
    for (i, span) in spans.enumerated() where i % 2 == 0 { t.heap.freeSpan(span) }
    #expect(t.dirtyBytes == 12 << 20 && t.log.decommits.isEmpty)
    // a 14 MiB page run from fresh pages raises the peak to 26 MiB in use:
    // the dirty pages go back down to within 3 MiB of it, not 1
    let run = try #require(t.heap.allocateRun(14 << 20, alignment: TestPageHeap.page, zeroed: nil, guardPage: false))
    #expect(t.heap.state.pointee.inUseBytes == 26 << 20)
    #expect(t.dirtyBytes <= 3 << 20 && t.dirtyBytes > PageHeapState.peakSlack)
    #expect(t.heap.spanSlack == 3 << 20)  // the page run is not a small span
    Invariants.checkPageHeap(t.heap)
    _ = run
  }

  /// Guard pages hold no memory: secure mode's peak in use, which bounds
  /// its free pages, leaves them out (counted, one-page spans doubled it).
  @Test func securePeakInUseLeavesOutGuardPages() throws {
    let t = TestPageHeap(topPad: 0, dirtyLimit: 1 << 40)
    defer { t.close() }
    t.heap.site.configure(trimThreshold: nil, topPad: nil, withinPeak: true)
    var spans: [SpanPtr] = []
    for _ in 0..<64 {
      let span = try #require(t.heap.allocateSpan(pages: 1, guardPage: true))
      #expect(span.pointee.guarded && span.pointee.pages == 2)
      span.pointee.kind = SpanKind.small
      spans.append(span)
    }
    #expect(t.heap.state.pointee.inUseBytes == t.pages(128))
    #expect(t.heap.state.pointee.inUsePeak == t.pages(64) && t.heap.state.pointee.spanPeak == t.pages(64))
    for span in spans { t.heap.freeSpan(span) }
    #expect(t.heap.state.pointee.spanBytes == 0 && t.heap.state.pointee.residentInUseBytes == 0)
    Invariants.checkPageHeap(t.heap)
  }

  @Test func theDirtyLimitGrowsWithTheBytesInUseUnlessFixed() throws {
    for fixed in [false, true] {
      let t = TestPageHeap(topPad: 0, dirtyLimit: 1 << 40)
      defer { t.close() }
      // 40 pages in use, then the limit cut to 4 pages
      let live = try #require(t.heap.allocateSpan(pages: 32))
      let churn = try #require(t.heap.allocateSpan(pages: 8))
      t.heap.site.configure(trimThreshold: nil, topPad: nil, dirtyLimit: t.pages(4), fixed: fixed)
      #expect(t.heap.state.pointee.heapBytes >= t.pages(40))
      // 8 pages freed while 32 stay in use: up to 32 pages may stay dirty,
      // unless the limit was fixed
      t.heap.freeSpan(churn)
      #expect(t.heap.dirtyCap() == (fixed ? t.pages(4) : max(t.pages(4), t.heap.state.pointee.heapBytes - t.freeBytes)))
      #expect(t.dirtyBytes == (fixed ? t.pages(3) : t.pages(8)))  // fixed: 5 of 8 pages over 3.5
      #expect(t.log.decommits.count == (fixed ? 1 : 0))
      // everything freed: nothing in use, the 4-page limit holds either way
      t.heap.freeSpan(live)
      #expect(t.dirtyBytes <= t.pages(4))
      Invariants.checkPageHeap(t.heap)
    }
  }

  @Test func theTopBeyondTheTrimThresholdGoesBack() throws {
    let t = TestPageHeap(trimThreshold: 8 * 4096, topPad: 2 * 4096)
    defer { t.close() }
    let a = try #require(t.heap.allocateSpan(pages: 4))  // region: 4 pages + 2 of pad
    let b = try #require(t.heap.allocateSpan(pages: 16))  // a second region, merged with the pad
    try #require(t.log.regions.count == 2 && b.pointee.start == a.pointee.end)
    #expect(t.log.top == t.log.base + t.pages(24) && t.freeBytes == t.pages(4))
    t.heap.freeSpan(b)  // 20 free pages at the top > 8: cut to the 2 pages of pad
    #expect(t.log.shrinks == [a.pointee.end + t.pages(2)] && t.log.top == a.pointee.end + t.pages(2))
    #expect(t.freeSpans().map { $0.pointee.start } == [a.pointee.end] && t.freeBytes == t.pages(2))
    #expect(PageMap.lookup(t.log.top) == nil && PageMap.lookup(t.log.top - 1) == PageMap.lookup(a.pointee.end))
    Invariants.checkPageHeap(t.heap)
    // a free below the threshold stays
    let c = try #require(t.heap.allocateSpan(pages: 2))
    t.heap.freeSpan(c)
    #expect(t.log.shrinks.count == 1 && t.freeBytes == t.pages(2))
    // malloc_trim(0): the whole free top goes back
    #expect(t.heap.trim(pad: 0))
    #expect(t.log.shrinks.last == a.pointee.end && t.log.top == a.pointee.end && t.freeBytes == 0)
    // a break that moved: the top cannot go back, so malloc_trim only decommits it
    t.log.refuseShrink = true
    t.heap.freeSpan(a)
    #expect(t.log.top == t.log.base + t.pages(4) && t.freeBytes == t.pages(4) && t.dirtyBytes == t.pages(4))
    #expect(t.heap.trim(pad: 0))
    #expect(t.log.shrinks.count == 2 && t.log.top == t.log.base + t.pages(4) && t.freeBytes == t.pages(4))
    #expect(t.log.decommits.count == 1 && t.log.decommits.first?.start == t.log.base && t.dirtyBytes == 0)
    Invariants.checkPageHeap(t.heap)
  }

  @Test func anExhaustedBufferGivesNil() throws {
    let t = TestPageHeap(bytes: 16 << 20)
    defer { t.close() }
    #expect(t.heap.allocateSpan(pages: 4097) == nil)  // more than the buffer
    #expect(t.heap.allocateSpan(pages: 1 << 40) == nil)
    errno = 0
    #expect(t.heap.allocateRun(17 << 20, alignment: 4096, zeroed: nil, guardPage: false) == nil)
    #expect(errno == ENOMEM)
    #expect(t.log.regions.isEmpty && t.freeBytes == 0)
    let a = try #require(t.heap.allocateSpan(pages: 4000))
    #expect(t.heap.allocateSpan(pages: 97) == nil)  // 96 left
    #expect(t.freeBytes == 0 && t.log.regions.count == 1)
    let b = try #require(t.heap.allocateSpan(pages: 96))
    #expect(b.pointee.end == t.log.base + (16 << 20))
    #expect(t.heap.allocateSpan(pages: 1) == nil)
    Invariants.checkPageHeap(t.heap)
    t.heap.freeSpan(b)  // what comes back serves again
    let c = try #require(t.heap.allocateSpan(pages: 96))
    #expect(c.pointee.start == b.pointee.start)
    t.heap.freeSpan(a)
    t.heap.freeSpan(c)
    #expect(t.freeBytes == 16 << 20)
    Invariants.checkPageHeap(t.heap)
  }

  @Test func runsAreAlignedZeroedAndGuarded() throws {
    let t = TestPageHeap(topPad: 64 * 4096)
    defer { t.close() }
    let p = try #require(t.heap.allocateRun(3 * 4096, alignment: 64 << 10, zeroed: nil, guardPage: false))
    #expect(UInt(bitPattern: p) % (64 << 10) == 0)
    let run = try #require(PageMap.lookup(UInt(bitPattern: p)))
    #expect(run.pointee.kind == SpanKind.pageRun && run.pointee.pages == 3)
    // the 15 pages in front of it (the buffer starts a page past a 64 KiB
    // boundary), cut off for the alignment, are a free span
    #expect(run.pointee.start == t.log.base + t.pages(15))
    let lead = try #require(PageMap.lookup(t.log.base))
    #expect(lead.pointee.kind == SpanKind.free && lead.pointee.start == t.log.base && lead.pointee.end == run.pointee.start)
    p.initializeMemory(as: UInt8.self, repeating: 0xa5, count: 3 * 4096)
    t.heap.freeSpan(run)
    // the same (now dirty) pages asked for zeroed read zero
    let q = try #require(t.heap.allocateRun(3 * 4096, alignment: 64 << 10, zeroed: true, guardPage: false))
    #expect(q == p)
    #expect((0..<(3 * 4096)).allSatisfy { q.load(fromByteOffset: $0, as: UInt8.self) == 0 })
    let zeroedRun = try #require(PageMap.lookup(UInt(bitPattern: q)))
    t.heap.freeSpan(zeroedRun)
    // a guard page after the run: installed, counted, removed on free
    let g = try #require(t.heap.allocateRun(4096, alignment: 4096, zeroed: nil, guardPage: true))
    let guarded = try #require(PageMap.lookup(UInt(bitPattern: g)))
    #expect(guarded.pointee.guarded && guarded.pointee.pages == 2 && guarded.pointee.userPages == 1)
    #expect(t.log.guardsInstalled == [guarded.pointee.end - 4096] && t.heap.state.pointee.guardBytes == 4096)
    t.heap.freeSpan(guarded)
    #expect(t.log.guardsRemoved == t.log.guardsInstalled && t.heap.state.pointee.guardBytes == 0)
    Invariants.checkPageHeap(t.heap)
  }

  @Test func runsGrowAndShrinkInPlace() throws {
    let t = TestPageHeap(topPad: 32 * 4096)
    defer { t.close() }
    let spans = try t.neighbours(4, 4)
    let (a, b) = (spans[0], spans[1])
    #expect(!t.heap.tryGrowInPlace(a, pages: 6))  // b is in the way
    #expect(t.heap.tryGrowInPlace(b, pages: 10))  // the free rest is after b
    #expect(b.pointee.pages == 10 && PageMap.lookup(b.pointee.end - 1) == b)
    #expect(t.freeBytes == t.pages(22))
    t.heap.shrinkInPlace(b, pages: 2)  // the tail goes back and merges with the rest
    #expect(b.pointee.pages == 2 && t.freeBytes == t.pages(30))
    #expect(t.freeSpans().map { $0.pointee.start } == [b.pointee.end])
    Invariants.checkPageHeap(t.heap)
    t.heap.freeSpan(a)
    t.heap.freeSpan(b)
    Invariants.checkPageHeap(t.heap)
  }

  /// The checker itself fails on a page heap whose counts are wrong.
  @Test func invariantCheckerStopsOnABrokenCount() async {
    await #expect(processExitsWith: .failure) {
      let t = TestPageHeap(topPad: 8 * 4096)
      let a = t.heap.allocateSpan(pages: 4)!
      t.heap.freeSpan(a)
      t.heap.state.pointee.freeBytes &+= 4096
      Invariants.checkPageHeap(t.heap)
    }
  }
}
