import Testing
@testable import SwiftMalloc

@Suite struct SpanListTests {
  @Test func pushAndRemoveKeepLinksConsistent() {
    let spans = UnsafeMutablePointer<Span>.allocate(capacity: 4)
    defer { spans.deallocate() }
    for i in 0..<4 { (spans + i).initialize(to: Span(start: UInt(i) << 12, pages: 1, next: nil, prev: nil, freeList: nil, bumpNext: 0, used: 0, sizeClass: 0, kind: 0, fromSbrk: false, onList: false, guarded: false, freedAt: 0, owner: 0)) }
    var list = SpanList(head: nil, count: 0)
    for i in 0..<4 { list.push(spans + i) }
    #expect(list.count == 4)
    #expect(list.head == spans + 3)
    list.remove(spans + 1)        // middle
    list.remove(spans + 3)        // head
    #expect(list.count == 2)
    #expect(list.head == spans + 2)
    #expect(list.head?.pointee.next == spans + 0)
    #expect(spans[0].prev == spans + 2)
    #expect(spans[0].next == nil)
    list.remove(spans + 0)        // tail
    list.remove(spans + 2)
    #expect(list.head == nil && list.count == 0)
  }
}
