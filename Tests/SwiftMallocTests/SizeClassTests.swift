import Testing
@testable import SwiftMalloc
import CShim

/// The generated size-class table (tools/gen_size_classes.py), checked from
/// the side that uses it.
@Suite struct SizeClassTests {
  @Test func everyRequestGetsTheSmallestClassThatFits() {
    #expect(swm_size_to_class(0) == 0)  // zero-size blocks have no class (ZeroBlocks)
    for n in 1...Int(SWM_MAX_SMALL) {
      let c = swm_size_to_class(n)
      #expect(c >= 1 && c < UInt32(SWM_NUM_CLASSES))
      #expect(swm_class_to_size(c) >= max(n, 1))
      if c > 1 { #expect(swm_class_to_size(c - 1) < max(n, 1), "request \(n) could use class \(c - 1)") }
    }
  }

  @Test func classesAreSixteenByteMultiplesAndIncreasing() {
    var previous = 0
    for c in 1..<UInt32(SWM_NUM_CLASSES) {
      let size = swm_class_to_size(c)
      #expect(size % 16 == 0)
      #expect(size > previous)
      previous = size
    }
    #expect(previous == Int(SWM_MAX_SMALL))
  }

  @Test func spansHoldTheirObjectsWithLittleWaste() {
    for c in 1..<UInt32(SWM_NUM_CLASSES) {
      let spanBytes = Int(swm_class_span_pages(c)) * 4096
      let objects = Int(swm_class_span_objects(c))
      let size = swm_class_to_size(c)
      #expect(objects == spanBytes / size)
      #expect(objects >= 2)
      #expect(Double(spanBytes - objects * size) / Double(spanBytes) <= 0.125)
      #expect(swm_class_batch_size(c) >= 2)
    }
  }

  @Test func blockStartTestAcceptsExactlyTheBlocksOfASpan() {
    for c in 1..<UInt32(SWM_NUM_CLASSES) {
      let size = UInt64(swm_class_to_size(c))
      let objects = UInt64(swm_class_span_objects(c))
      let spanBytes = UInt64(swm_class_span_pages(c)) * 4096
      var offset: UInt64 = 0
      while offset < spanBytes + 8192 {
        let isStart = offset % size == 0 && offset / size < objects
        #expect((swm_class_is_block_start(c, offset) != 0) == isStart, "class \(c) offset \(offset)")
        #expect((swm_class_is_block_start_at(Int(c) * 16, offset) != 0) == isStart, "class \(c) offset \(offset) (at)")
        offset += 1 + (offset % 7)  // dense but not exhaustive: ~1/4 of the offsets
      }
      // every block start exactly, and offsets "below" the span (wrapped)
      for k in 0..<objects { #expect(swm_class_is_block_start(c, k * size) != 0) }
      #expect(swm_class_is_block_start(c, UInt64(0) &- size) == 0)
    }
  }

  /// free's fast path takes a block's class from its page's facts as the
  /// class times 16 and indexes both the bins and the block-start table
  /// with it as a byte offset: both must have 16-byte entries, and the
  /// facts must give back every class, page offset and owner they hold.
  @Test func pageFactsIndexTheBinsAndTheBlockStartTable() {
    #expect(MemoryLayout<Bin>.stride == 16)
    #expect(MemoryLayout<swm_block_check_t>.stride == 16)
    for c in 1..<UInt32(SWM_NUM_CLASSES) {
      for (pageOffset, owner) in [(UInt(0), UInt32(0)), (4096, 1), (UInt(15) << 12, UInt32.max), (UInt(0xfffff) << 12, 77)] {
        let facts = SmallFacts(sizeClass: c, pageOffset: pageOffset, owner: owner)
        #expect(facts.isSmall)
        #expect(facts.sizeClass == c)
        #expect(facts.classTimes16 == Int(c) * 16)
        #expect(facts.pageOffset == pageOffset)
        #expect(facts.owner == owner)
        #expect(facts.spanOffset(of: 0x7f00_0000_0123) == pageOffset | 0x123)
      }
    }
  }
}
