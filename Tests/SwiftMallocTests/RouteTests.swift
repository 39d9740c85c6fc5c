import Testing
@testable import SwiftMalloc
import CShim

/// Route.decide: the one place that sends a request to a size class, a page
/// run, an mmap block or ENOMEM, checked against the rules in Route.swift
/// with the process's current thresholds.
extension EngineSuite { @Suite struct RouteTests {
  func destination(_ size: UInt, alignment: UInt = 16, overhead: UInt = 0) -> String {
    switch Route.decide(size: size, alignment: alignment, overhead: overhead) {
    case .sizeClass(let c): return "class \(swm_class_to_size(c))"
    case .pageRun: return "pageRun"
    case .mmap: return "mmap"
    case .zeroSize: return "zero"
    case .impossible: return "impossible"
    }
  }

  @Test func sizesGoToClassesRunsAndMappings() {
    Heap.ensureInitialized()
    #expect(swmcore_mallopt(Options.Option.mmapThreshold.malloptParameter!, 128 << 10) == 1)
    #expect(destination(0) == "zero")
    #expect(destination(1) == "class 16")
    #expect(destination(100) == "class 112")
    #expect(destination(32768) == "class 32768")
    #expect(destination(32769) == "pageRun")
    #expect(destination((128 << 10) - 1) == "pageRun")
    #expect(destination(128 << 10) == "mmap")
    #expect(destination(Heap.maxRequest) == "impossible")
    #expect(destination(UInt.max) == "impossible")
    // secure mode's canary makes a 32760-byte request too big for a class
    #expect(destination(32760, overhead: 16) == "pageRun")
    #expect(destination(100, overhead: 16) == "class 128")
  }

  @Test func alignedRequestsFindAnAlignedClassOrAPageRun() {
    Heap.ensureInitialized()
    #expect(destination(100, alignment: 64) == "class 128")
    #expect(destination(10, alignment: 4096) == "class 4096")
    #expect(destination(10, alignment: 8192) == "pageRun")
    // the alignment slack counts toward the threshold
    #expect(destination((128 << 10) - 8192, alignment: 8192) == "mmap")
    #expect(destination(10, alignment: Heap.maxRequest) == "impossible")
  }

  @Test func mmapMaxZeroKeepsEverythingInTheHeap() {
    Heap.ensureInitialized()
    #expect(swmcore_mallopt(Options.Option.mmapMax.malloptParameter!, 0) == 1)
    #expect(destination(64 << 20) == "pageRun")
    #expect(swmcore_mallopt(Options.Option.mmapMax.malloptParameter!, 65536) == 1)
    #expect(destination(64 << 20) == "mmap")
  }
} }
