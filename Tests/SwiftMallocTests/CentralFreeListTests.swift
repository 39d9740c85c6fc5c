import Testing
@testable import SwiftMalloc
import CShim

/// The central lists alone: each test builds lists and locks of its own
/// over a page heap of its own (TestPageHeap, a 16 MiB buffer), never
/// touching the process's heap, so these tests need no serialization.

/// Central lists' site of a test's own: one list and one lock per class,
/// over the test's page heap.
struct TestCentralSite: CentralSite {
  let lists: UnsafeMutablePointer<CentralFreeList>
  let locks: UnsafeMutablePointer<swm_lock_t>
  let pageHeap: PageHeap<BufferSite>

  init(over pageHeap: PageHeap<BufferSite>) {
    let classes = Int(SWM_NUM_CLASSES)
    lists = .allocate(capacity: classes)
    UnsafeMutableRawPointer(lists).initializeMemory(as: UInt8.self, repeating: 0,
                                                    count: classes * MemoryLayout<CentralFreeList>.stride)
    locks = .allocate(capacity: classes)
    UnsafeMutableRawPointer(locks).initializeMemory(as: UInt8.self, repeating: 0,
                                                    count: classes * MemoryLayout<swm_lock_t>.stride)
    self.pageHeap = pageHeap
  }

  func list(_ sizeClass: UInt32) -> UnsafeMutablePointer<CentralFreeList> { lists + Int(sizeClass) }
  func lock(_ sizeClass: UInt32) -> UnsafeMutablePointer<swm_lock_t> { locks + Int(sizeClass) }

  func close() {
    lists.deallocate()
    locks.deallocate()
  }
}

@Suite struct CentralFreeListTests {
  /// The class of 64-byte blocks, its span's pages and blocks.
  let sizeClass = swm_size_to_class(64)
  var pages: UInt { UInt(swm_class_span_pages(sizeClass)) }
  var objects: UInt { UInt(swm_class_span_objects(sizeClass)) }

  /// The blocks of a list linked through word 0.
  func blocks(_ head: RawPtr?) -> [UInt] {
    var out: [UInt] = []
    var cursor = head
    while let b = cursor { out.append(UInt(bitPattern: b)); cursor = b.load(as: RawPtr?.self) }
    return out
  }

  @Test func fetchCarvesASpanFromItsPageHeapAndReleaseKeepsOne() throws {
    let t = TestPageHeap()
    let site = TestCentralSite(over: t.heap)
    defer { site.close(); t.close() }
    let (head, taken) = Central.fetch(sizeClass, count: 32, owner: 7, in: site)
    #expect(taken == 32)
    // one span of the class, from the test's page heap
    #expect(t.log.regions.count == 1 && t.log.regions.first?.start == t.log.base
            && t.log.regions.first?.bytes == pages * 4096)
    let central = site.list(sizeClass)
    #expect(central.pointee.spans == 1 && central.pointee.freeBlocks == objects - 32)
    let got = blocks(head)
    #expect(got.count == 32 && Set(got).count == 32)
    for b in got {
      #expect(b >= t.log.base && b < t.log.base + pages * 4096 && (b - t.log.base) % 64 == 0)
      let facts = try #require(PageMap.smallFacts(b))
      #expect(facts.sizeClass == sizeClass && facts.owner == 7)
    }
    // another cache fetching from the span becomes its owner, on every page
    let (other, one) = Central.fetch(sizeClass, count: 1, owner: 9, in: site)
    #expect(one == 1 && PageMap.smallFacts(t.log.base)?.owner == 9)
    #expect(PageMap.smallFacts(t.log.base + (pages - 1) * 4096)?.owner == 9)
    Invariants.checkCentral(sizeClass, in: site)
    // all back: the span is empty, and kept (one per class)
    #expect(Central.release(sizeClass, head: other, in: site) == nil)
    #expect(Central.release(sizeClass, head: head, in: site) == nil)
    let kept = try #require(central.pointee.nonempty.head)
    #expect(central.pointee.emptySpans == 1 && kept.pointee.used == 0 && central.pointee.spans == 1
            && central.pointee.freeBlocks == objects)
    #expect(t.freeBytes == 0)
    Invariants.checkCentral(sizeClass, in: site)
    // malloc_trim: the kept span goes back to the page heap
    Central.releaseEmptySpans(in: site)
    #expect(central.pointee.emptySpans == 0 && central.pointee.spans == 0 && central.pointee.freeBlocks == 0)
    #expect(t.freeBytes == pages * 4096 && PageMap.smallFacts(t.log.base)?.isSmall == false)
    Invariants.checkCentral(sizeClass, in: site)
    Invariants.checkPageHeap(t.heap)
  }

  @Test func aSecondEmptySpanGoesBackAtOnce() throws {
    let t = TestPageHeap()
    let site = TestCentralSite(over: t.heap)
    defer { site.close(); t.close() }
    var all: [UInt] = []
    while UInt(all.count) < 2 * objects {
      let (head, taken) = Central.fetch(sizeClass, count: 64, owner: 1, in: site)
      try #require(taken > 0)
      all += blocks(head)
    }
    let central = site.list(sizeClass)
    #expect(UInt(all.count) == 2 * objects && Set(all).count == all.count)
    #expect(central.pointee.spans == 2 && central.pointee.freeBlocks == 0 && t.freeBytes == 0)
    Invariants.checkCentral(sizeClass, in: site)
    for b in all {
      let p = RawPtr(bitPattern: b)!
      p.storeBytes(of: nil, as: RawPtr?.self)
      Central.release(sizeClass, head: p, in: site)
    }
    // the first span to empty is kept, the second goes back to the page heap
    #expect(central.pointee.spans == 1 && central.pointee.emptySpans == 1 && central.pointee.freeBlocks == objects)
    #expect(t.freeBytes == pages * 4096)
    Invariants.checkCentral(sizeClass, in: site)
    Invariants.checkPageHeap(t.heap)
    Central.releaseEmptySpans(in: site)
  }

  @Test func anExhaustedPageHeapGivesNoBlocks() throws {
    let t = TestPageHeap(bytes: UInt(swm_class_span_pages(swm_size_to_class(64))) * 4096)  // one span's worth
    let site = TestCentralSite(over: t.heap)
    defer { site.close(); t.close() }
    var all: [UInt] = []
    while UInt(all.count) < objects {
      let (head, taken) = Central.fetch(sizeClass, count: 64, owner: 1, in: site)
      try #require(taken > 0)
      all += blocks(head)
    }
    let (head, taken) = Central.fetch(sizeClass, count: 64, owner: 1, in: site)
    #expect(head == nil && taken == 0)
    let central = site.list(sizeClass)
    #expect(central.pointee.spans == 1 && central.pointee.freeBlocks == 0)
    Invariants.checkCentral(sizeClass, in: site)
    for b in all {
      let p = RawPtr(bitPattern: b)!
      p.storeBytes(of: nil, as: RawPtr?.self)
      Central.release(sizeClass, head: p, in: site)
    }
    Central.releaseEmptySpans(in: site)
    #expect(central.pointee.spans == 0 && t.freeBytes == pages * 4096)
  }
}
