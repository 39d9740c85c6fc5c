import CShim

// See Malloc.swift for an overview.

/// Where a set of central lists lives and what it stands on: one
/// CentralFreeList and one lock per size class, and the page heap that
/// carves their spans and takes back the empty ones. Central's functions
/// are generic over it, so the process's (ProcessCentral, no size, fixed
/// addresses) costs what static functions would; a unit test hands lists,
/// locks and a page heap over a buffer of its own
/// (Tests/SwiftMallocTests/CentralFreeListTests.swift).
protocol CentralSite {
  associatedtype Pages: PageHeapSite
  /// The list of `sizeClass` (1 ..< SWM_NUM_CLASSES).
  func list(_ sizeClass: UInt32) -> UnsafeMutablePointer<CentralFreeList>
  /// The lock of that list.
  func lock(_ sizeClass: UInt32) -> UnsafeMutablePointer<swm_lock_t>
  /// The page heap below the lists.
  var pageHeap: PageHeap<Pages> { get }
}

/// The process's central lists: HeapState.central, the class locks, the
/// process's page heap.
struct ProcessCentral: CentralSite {
  @inline(__always) func list(_ sizeClass: UInt32) -> UnsafeMutablePointer<CentralFreeList> { Central.list(sizeClass) }
  @inline(__always) func lock(_ sizeClass: UInt32) -> UnsafeMutablePointer<swm_lock_t> { swm_lock_at(sizeClass) }
  @inline(__always) var pageHeap: PageHeap<ProcessPageHeap> { Heap.pageHeap }
}

/// The process's central lists, as the thread caches, secure mode and
/// malloc_trim call them.
extension Central {
  @inline(__always)
  static func fetch(_ sizeClass: UInt32, count: UInt32, owner: UInt32) -> (head: RawPtr?, taken: UInt32) {
    fetch(sizeClass, count: count, owner: owner, in: ProcessCentral())
  }

  @inline(__always) @discardableResult
  static func release(_ sizeClass: UInt32, head: RawPtr?, count: UInt32 = .max) -> RawPtr? {
    release(sizeClass, head: head, count: count, in: ProcessCentral())
  }

  static func releaseEmptySpans() { releaseEmptySpans(in: ProcessCentral()) }
}
