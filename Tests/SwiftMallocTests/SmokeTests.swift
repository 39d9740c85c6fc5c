import Testing
@testable import SwiftMalloc
import CShim

@Suite struct SmokeTests {
  @Test func mallocFreeRoundTrip() {
    let p = swmcore_malloc(100)!
    #expect(UInt(bitPattern: p) % 16 == 0)
    #expect(swmcore_usable_size(p) >= 100)
    p.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 100)
    swmcore_free(p)
  }
}
