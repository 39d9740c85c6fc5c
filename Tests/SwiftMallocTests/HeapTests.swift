import Testing
@testable import SwiftMalloc
import CShim
import Foundation

/// The engine itself, in this (hosted) test process: swmcore_ functions and
/// the page heap, side by side with the process's own glibc malloc. The
/// suite is serialised: the page-heap tests look at neighbouring spans.
@Suite(.serialized) struct HeapTests {
  @Test func smallBlocksAreAlignedDistinctAndReused() {
    var blocks: [UnsafeMutableRawPointer] = []
    for i in 0..<1000 {
      let p = swmcore_malloc(UInt(i % 300))!
      #expect(UInt(bitPattern: p) % 16 == 0)
      #expect(swmcore_usable_size(p) >= UInt(i % 300))
      p.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: i), count: i % 300)
      blocks.append(p)
    }
    #expect(Set(blocks).count == blocks.count)
    for (i, p) in blocks.enumerated() {
      for k in 0..<(i % 300) { #expect(p.load(fromByteOffset: k, as: UInt8.self) == UInt8(truncatingIfNeeded: i)) }
      swmcore_free(p)
    }
    // LIFO thread cache: the last block freed of a class comes back first
    let a = swmcore_malloc(48)!
    swmcore_free(a)
    #expect(swmcore_malloc(48)! == a)
    swmcore_free(a)
  }

  @Test func spansSplitAndCoalesce() {
    guard let a = PageHeap.allocateSpan(pages: 3), let b = PageHeap.allocateSpan(pages: 5) else {
      Issue.record("page heap gave no span")
      return
    }
    #expect(a.pointee.pages == 3 && b.pointee.pages == 5)
    #expect(PageMap.lookup(a.pointee.start) == a)
    #expect(PageMap.lookup(a.pointee.end - 1) == a)
    #expect(PageMap.lookup(b.pointee.start + 4096 * 4) == b)
    let adjacent = b.pointee.start == a.pointee.end
    let start = a.pointee.start
    let bStart = b.pointee.start
    PageHeap.freeSpan(a)
    PageHeap.freeSpan(b)
    let merged = PageMap.lookup(start)
    #expect(merged?.pointee.kind == SpanKind.free)
    if adjacent {
      // both pages runs (and whatever free space followed) are one span now,
      // named by its first and last page and by the start of each freed block
      #expect(merged!.pointee.pages >= 8)
      #expect(PageHeap.covers(merged!, start + 7 * 4096))
      #expect(PageMap.lookup(merged!.pointee.end - 1) == merged)
      #expect(PageMap.lookup(bStart) == merged)
    }
  }

  @Test func mediumBlocksArePageRunsThatGrowAndShrinkInPlace() {
    let p = swmcore_malloc(40_000)!
    let span = PageMap.lookup(UInt(bitPattern: p))!
    #expect(span.pointee.kind == SpanKind.pageRun)
    #expect(swmcore_usable_size(p) == 40_960)
    let q = swmcore_realloc(p, 20_000)!
    #expect(q == p)
    #expect(swmcore_usable_size(q) == 20_480)
    swmcore_free(q)
  }

  @Test func largeBlocksAreMappedAndRemapped() {
    // pin the threshold: earlier frees of mmap blocks may have raised it
    #expect(swmcore_mallopt(Options.M_MMAP_THRESHOLD, 128 << 10) == 1)
    let before = Heap.state.pointee.largeBytes
    let p = swmcore_malloc(1 << 20)!
    #expect(Heap.state.pointee.largeBytes == before + (1 << 20))
    p.storeBytes(of: 0x1234, toByteOffset: (1 << 20) - 8, as: UInt64.self)
    let q = swmcore_realloc(p, 8 << 20)!
    #expect(q.load(fromByteOffset: (1 << 20) - 8, as: UInt64.self) == 0x1234)
    #expect(PageMap.lookup(UInt(bitPattern: q))?.pointee.kind == SpanKind.mmap)
    swmcore_free(q)
    #expect(Heap.state.pointee.largeBytes == before)
  }

  @Test func impossibleSizesFailWithENOMEM() {
    errno = 0
    #expect(swmcore_malloc(UInt.max) == nil)
    #expect(errno == ENOMEM)
    errno = 0
    #expect(swmcore_calloc(UInt.max / 2, 4) == nil)
    #expect(errno == ENOMEM)
    errno = 0
    #expect(swmcore_malloc(UInt(Int.max)) == nil)
    #expect(errno == ENOMEM)
  }

  @Test func alignedBlocksForEveryPowerOfTwo() {
    var alignment: UInt = 8
    while alignment <= 1 << 20 {
      for size: UInt in [1, 100, 5000, 200_000] {
        var p: UnsafeMutableRawPointer? = nil
        #expect(swmcore_posix_memalign(&p, alignment, size) == 0)
        #expect(UInt(bitPattern: p!) % alignment == 0)
        #expect(swmcore_usable_size(p) >= size)
        p!.initializeMemory(as: UInt8.self, repeating: 1, count: Int(size))
        swmcore_free(p)
      }
      alignment <<= 1
    }
  }

  @Test func blocksFreedByAnotherThreadReturnCorrectly() async {
    let count = 20_000
    let blocks = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: count)
    defer { blocks.deallocate() }
    for i in 0..<count {
      let p = swmcore_malloc(UInt(16 + i % 512))!
      p.storeBytes(of: UInt64(i), as: UInt64.self)
      blocks[i] = p
    }
    let address = UInt(bitPattern: blocks)
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let t = Thread {
        let blocks = UnsafeMutablePointer<UnsafeMutableRawPointer>(bitPattern: address)!
        for i in 0..<count {
          precondition(blocks[i].load(as: UInt64.self) == UInt64(i))
          swmcore_free(blocks[i])
        }
        c.resume()
      }
      t.start()
    }
    // the memory comes back: allocating again succeeds and content is ours
    for i in 0..<count {
      let p = swmcore_malloc(UInt(16 + i % 512))!
      p.storeBytes(of: UInt64(i), as: UInt64.self)
      blocks[i] = p
    }
    for i in 0..<count {
      #expect(blocks[i].load(as: UInt64.self) == UInt64(i))
      swmcore_free(blocks[i])
    }
  }
}
