import CShim

/// What a span is used for.
enum SpanKind {
  /// In the page heap, on a free list.
  static let free: UInt8 = 1
  /// Carved into blocks of one size class, owned by that class's central list.
  static let small: UInt8 = 2
  /// One medium block (from SWM_MAX_SMALL up to the mmap threshold).
  static let pageRun: UInt8 = 3
  /// One mmap block (M_MMAP_THRESHOLD and up); only its first page is mapped.
  static let mmap: UInt8 = 4
  /// The tombstone left in the page map where a freed mmap block started, so
  /// that a second free of it is reported as a double free.
  static let unmapped: UInt8 = 5
  /// The shared Span of every zero-size block (ZeroBlocks.swift); never in
  /// the page map.
  static let zero: UInt8 = 6
  /// Secure mode: a small span kept with its guard page for reuse
  /// (PageHeap+GuardedPool.swift); no block in it is live.
  static let pooled: UInt8 = 7
}

/// A run of whole pages with one use. Span structs live in the metadata arena
/// (MetaArena.swift), never inside the pages they describe.
///
/// Invariants:
/// - `start` is page aligned; the span covers [start, start + pages * 4096).
/// - small and pageRun spans: the page map sends every page of the span to
///   this struct; free spans: their first and last page (see PageHeap);
///   mmap spans: only the first page.
/// - `sizeClass != 0` exactly when kind == small; then every page's
///   SmallFacts in the page map repeat sizeClass, the page's offset and `owner` (the
///   free fast path reads only that).
/// - small spans: blocks are [start + k * size); blocks below `bumpNext` were
///   handed out at least once, each either out (counted in `used`) or on
///   `freeList`; `onList` is true while the span has a free or unbumped block.
///   A span holds at most 256 blocks, so `used` fits in 16 bits.
/// - The struct fits in Meta.spanBytes (64): one cache line for free().
/// - free spans: `guarded` is false (the guard page is unprotected on
///   release), and `bumpNext` holds the dirty extent (see `dirtyFrom`): the
///   pages outside it read zero and are not resident. A span has fewer than
///   2^32 pages (16 TiB), so the extent's two page offsets fit one word.
struct Span {
  var start: UInt
  var pages: UInt
  var next: SpanPtr?
  var prev: SpanPtr?
  var freeList: RawPtr?
  var bumpNext: UInt
  var used: UInt16
  var sizeClass: UInt8
  var kind: UInt8
  var fromSbrk: Bool
  var onList: Bool
  /// Secure mode: the span's last page is a guard (PROT_NONE), not in use.
  var guarded: Bool
  /// Free spans that are not clean: when they became dirty-free (ms,
  /// wrapping), for the page heap's decay.
  var freedAt: UInt32
  /// Small spans: the thread cache that last fetched blocks from this span
  /// (ThreadCache.id, 0 for none). Only that thread keeps a block it frees
  /// in its own cache; any other thread passes it back to the central list
  /// (ThreadCache.freeSlow), so blocks carved for one thread are not handed
  /// out again to another, whose writes would then share cache lines with
  /// the first thread's neighbouring blocks (passive false sharing).
  /// Change it only with PageMap.setSmall, which copies it to every page.
  var owner: UInt32

  @inline(__always) var bytes: UInt { pages &<< OSMemory.pageShift }
  /// The pages a page run's owner may use (all but a guard page).
  @inline(__always) var userPages: UInt { guarded ? pages &- 1 : pages }
  @inline(__always) var end: UInt { start &+ bytes }

  // MARK: the dirty extent (free spans, and a span the page heap is cutting from one)

  /// The first page (offset from `start`) that may be resident: a free span's
  /// pages [dirtyFrom, dirtyTo) may hold data and occupy memory, every page
  /// outside reads zero and is not resident (never touched, or
  /// decommitted). One extent per span: merging two spans takes the hull of
  /// theirs (it may then cover clean pages, never miss a dirty one), so the
  /// page heap counts what is resident closely enough to bound it, where a
  /// single "clean" flag counted a whole merged span as dirty once any of it
  /// was, and decommitted the whole span each time (malloc-large: 0.67M
  /// page faults against 0.19M). Only small spans use `bumpNext` otherwise.
  @inline(__always) var dirtyFrom: UInt { bumpNext & 0xFFFF_FFFF }
  /// The page after the last that may be resident (offset from `start`).
  @inline(__always) var dirtyTo: UInt { bumpNext &>> 32 }
  @inline(__always) var dirtyPages: UInt { dirtyTo &- dirtyFrom }
  @inline(__always) var dirtyBytes: UInt { dirtyPages &<< OSMemory.pageShift }
  /// Every page reads zero and none is resident.
  @inline(__always) var clean: Bool { bumpNext == 0 }
  /// Sets the extent to [from, to) (page offsets); an empty one is clean.
  @inline(__always) mutating func setDirty(from: UInt, to: UInt) {
    bumpNext = to > from ? (to &<< 32) | from : 0
  }
  @inline(__always) mutating func setAllDirty() { setDirty(from: 0, to: pages) }
  @inline(__always) mutating func setClean() { bumpNext = 0 }
  /// Whether the span contains `address`: false for a stale page-map slot
  /// inside a free span (see PageHeap's invariants).
  @inline(__always) func covers(_ address: UInt) -> Bool { address &- start < bytes }
}

typealias SpanPtr = UnsafeMutablePointer<Span>

/// An intrusive doubly linked list of spans (through next/prev).
struct SpanList {
  var head: SpanPtr?
  var count: UInt

  mutating func push(_ span: SpanPtr) {
    span.pointee.prev = nil
    span.pointee.next = head
    head?.pointee.prev = span
    head = span
    count &+= 1
  }

  mutating func remove(_ span: SpanPtr) {
    if let prev = span.pointee.prev { prev.pointee.next = span.pointee.next } else { head = span.pointee.next }
    span.pointee.next?.pointee.prev = span.pointee.prev
    span.pointee.next = nil
    span.pointee.prev = nil
    count &-= 1
  }
}
