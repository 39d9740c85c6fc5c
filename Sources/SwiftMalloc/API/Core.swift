import CShim

// Core: the allocator as the pool family (Pools/) sees it. The pools take
// their memory from these calls and from nothing else of the engine, so the
// engine's state, routing and ownership checks can change under them; this
// file is the one place that knows which engine functions serve each call.
//
//   allocate(size, alignment:)  a block: malloc's path, or the aligned one
//   free(p)                     gives a block back, as free() does
//   ownsPageBlock(at:)          is this address the start of a live page block?
//   usableSize(p)               the bytes usable at a live block
//   pageSize                    the engine's page, in bytes
//
// A "page block" is a block that has pages of its own: a page run of the page
// heap or an mmap block. Every block of an alignment above the page size is
// one and starts at the address allocate returned. Sizes are in bytes; the
// memory is swiftmalloc's own (never the system malloc's), counted in
// malloc_stats like any other block.

// See Malloc.swift for an overview.

enum Core {
  /// The engine's page size in bytes (a power of two).
  static var pageSize: UInt { OSMemory.pageSize }

  /// `size` bytes aligned to `alignment`, or nil with errno ENOMEM when the
  /// memory cannot be had (or `size` is impossible). `alignment` must be a
  /// power of two; 16 and below all give malloc's 16-byte alignment. Above
  /// the page size the block is a page block (see ownsPageBlock(at:)).
  @inline(__always)
  static func allocate(_ size: UInt, alignment: UInt = 16) -> RawPtr? {
    if alignment <= 16 { return swmcore_malloc(size) }
    return alignedAllocate(alignment, size)
  }

  /// Gives back a block from `allocate`; nil does nothing. Any other
  /// pointer, or a block freed already, aborts with free()'s message.
  @inline(__always)
  static func free(_ p: RawPtr?) {
    swmcore_free(p)
  }

  /// Whether `address` is the first byte of a live page block that
  /// `allocate` handed out. Reads the page map only, never `address`
  /// itself, so any address may be asked about (unmapped memory, a guard
  /// page, a small block, another allocator's memory): a pool asks before it
  /// reads a header it keeps at the start of its page blocks.
  @inline(__always)
  static func ownsPageBlock(at address: UInt) -> Bool {
    guard let span = PageMap.lookup(address), span.pointee.start == address else { return false }
    let kind = span.pointee.kind
    return kind == SpanKind.pageRun || kind == SpanKind.mmap
  }

  /// The bytes usable at `p`, a live block from `allocate` (at least the
  /// size asked for). Aborts, as malloc_usable_size does, when `p` is not
  /// one.
  static func usableSize(_ p: RawPtr) -> UInt {
    swmcore_usable_size(p)
  }
}
