import Testing
@testable import SwiftMalloc
import CShim
import Foundation

/// Every suite that reads or changes the engine's one global state (its
/// thresholds, its page heap) runs inside this one, one test at a time.
@Suite(.serialized) struct EngineSuite {}

/// The engine itself, in this (hosted) test process: swmcore_ functions and
/// the page heap, side by side with the process's own glibc malloc.
extension EngineSuite { @Suite struct HeapTests {
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
    // One 8-page span cut in two gives two spans that are neighbours for
    // certain, whatever else the page heap holds.
    let heap = Heap.pageHeap
    guard let a = heap.allocateSpan(pages: 8) else {
      Issue.record("page heap gave no span")
      return
    }
    swm_lock(heap.lock)
    let b = heap.split(a, keeping: 3)
    if let b { _ = PageMap.set(b.pointee.start, pages: b.pointee.pages, to: b) }
    swm_unlock(heap.lock)
    guard let b else {
      Issue.record("split gave no span")
      return
    }
    #expect(a.pointee.pages == 3 && b.pointee.pages == 5 && b.pointee.start == a.pointee.end)
    #expect(PageMap.lookup(a.pointee.start) == a)
    #expect(PageMap.lookup(a.pointee.end - 1) == a)
    #expect(PageMap.lookup(b.pointee.start + 4096 * 4) == b)
    let start = a.pointee.start
    let bStart = b.pointee.start
    heap.freeSpan(a)
    heap.freeSpan(b)
    // both runs (and whatever free space lay around them) are one span now,
    // named by its first and last page and by the start of each freed block
    guard let merged = PageMap.lookup(start) else {
      Issue.record("freed pages unknown to the page map")
      return
    }
    #expect(merged.pointee.kind == SpanKind.free)
    #expect(merged.pointee.start <= start && merged.pointee.end >= start + 8 * 4096)
    #expect(merged.pointee.covers(start + 7 * 4096))
    #expect(PageMap.lookup(merged.pointee.end - 1) == merged)
    #expect(PageMap.lookup(bStart) == merged)
    swm_check_invariants()
  }

  @Test func invariantsHoldAfterMixedTraffic() {
    var live: [UnsafeMutableRawPointer] = []
    var seed: UInt64 = 42
    for i in 0..<20_000 {
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      let size = UInt(seed >> 33) % (i % 10 == 0 ? 300_000 : 2_000)
      live.append(swmcore_malloc(size)!)
      if live.count > 500 { swmcore_free(live.remove(at: Int(seed >> 40) % live.count)) }
    }
    swm_check_invariants()
    for p in live { swmcore_free(p) }
    _ = swmcore_malloc_trim(0)
    swm_check_invariants()
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
    #expect(swmcore_mallopt(Options.Option.mmapThreshold.malloptParameter!, 128 << 10) == 1)
    let before = LargeBlocks.state.pointee.bytes
    let p = swmcore_malloc(1 << 20)!
    // where the kernel makes guards without a mapping, the block's guard
    // page is counted with it (LargeBlocks.allocate)
    let guardPage: UInt = swm_guard_is_free() != 0 ? OSMemory.pageSize : 0
    #expect(LargeBlocks.state.pointee.bytes == before + (1 << 20) + guardPage)
    #expect(swmcore_usable_size(p) == 1 << 20)
    p.storeBytes(of: 0x1234, toByteOffset: (1 << 20) - 8, as: UInt64.self)
    let q = swmcore_realloc(p, 8 << 20)!
    #expect(q.load(fromByteOffset: (1 << 20) - 8, as: UInt64.self) == 0x1234)
    #expect(PageMap.lookup(UInt(bitPattern: q))?.pointee.kind == SpanKind.mmap)
    swmcore_free(q)
    #expect(LargeBlocks.state.pointee.bytes == before)
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
} }
