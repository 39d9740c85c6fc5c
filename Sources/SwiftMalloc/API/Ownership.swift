import CShim

// See Malloc.swift for an overview.

/// What a pointer handed back to us is, decided one way for free, realloc,
/// malloc_usable_size, free_sized and free_aligned_sized (and, through
/// Core, the slab caches), with one set of messages:
///
///   a live small block      its span (a block start whose freed tag is not set)
///   a live page run or mmap block   its span (the block's first byte)
///   a zero-size block       ZeroBlocks.span (kind zero)
///   a freed block           "double free of" (the free family) or
///                           "use of freed pointer" (realloc, usable size)
///   anything else           "invalid pointer"
///
/// The free fast path checks small blocks with the same function
/// (checkSmallBlock) on its page's SmallFacts instead of the Span.
enum Ownership {
  enum Use {
    /// The call gives the block back (free, free_sized, free_aligned_sized).
    case release
    /// The call reads or resizes it (realloc, malloc_usable_size).
    case access
  }

  /// The span of the live block that starts at `p`; stops the process with
  /// one line naming `call` and `p` for anything else.
  static func liveBlock(_ p: RawPtr, use: Use, call: StaticString) -> SpanPtr {
    let address = UInt(bitPattern: p)
    guard let span = PageMap.lookup(address) else {
      if ZeroBlocks.contains(address) { return ZeroBlocks.span }  // any address there: freed or not, it is one
      Diagnostics.invalidPointer(call, p)
    }
    switch span.pointee.kind {
    case SpanKind.small:
      _ = checkSmallBlock(p, sizeClass: UInt32(span.pointee.sizeClass), offset: address &- span.pointee.start,
                          use: use, call: call)
    case SpanKind.pageRun, SpanKind.mmap:
      if address != span.pointee.start { Diagnostics.invalidPointer(call, p) }
    case SpanKind.free, SpanKind.pooled:
      if !span.pointee.covers(address) { Diagnostics.invalidPointer(call, p) }  // a stale slot
      freed(p, use: use, call: call)
    case SpanKind.unmapped:
      // a freed mmap block started here (mmap blocks start on a page)
      if address & OSMemory.pageMask == 0 { freed(p, use: use, call: call) }
      Diagnostics.invalidPointer(call, p)
    default:
      Diagnostics.invalidPointer(call, p)
    }
    return span
  }

  /// A small block at `offset` bytes into its span must be a block start
  /// and not carry the freed tag; returns the tag it would carry when freed.
  @inline(__always)
  static func checkSmallBlock(_ p: RawPtr, sizeClass: UInt32, offset: UInt, use: Use, call: StaticString) -> UInt {
    if swm_class_is_block_start(sizeClass, UInt64(offset)) == 0 {
      Diagnostics.invalidPointer(call, p)  // inside a block, or past the span's last block
    }
    let tag = UInt(bitPattern: p) ^ Heap.state.pointee.tagSecret
    if p.load(fromByteOffset: 8, as: UInt.self) == tag { freed(p, use: use, call: call) }
    return tag
  }

  /// free's form of checkSmallBlock, split so that its fast path needs no
  /// stack frame: the test here, and on failure a tail jump to
  /// rejectSmallBlock, which stops the process (a call to a function that
  /// never returns made free save and restore a register on every call).
  @inline(__always)
  static func isLiveSmallBlock(_ p: RawPtr, facts: SmallFacts, offset: UInt, tag: UInt) -> Bool {
    swm_class_is_block_start_at(facts.classTimes16, UInt64(offset)) != 0 && p.load(fromByteOffset: 8, as: UInt.self) != tag
  }

  /// Stops the process for a small block isLiveSmallBlock rejected, with
  /// checkSmallBlock's message. Returns nothing, rather than Never, so that
  /// the caller reaches it by a jump.
  @inline(never)
  static func rejectSmallBlock(_ p: RawPtr, sizeClass: UInt32, offset: UInt, use: Use, call: StaticString) {
    _ = checkSmallBlock(p, sizeClass: sizeClass, offset: offset, use: use, call: call)
    Diagnostics.invalidPointer(call, p)  // not reached: the check above stops for what was rejected
  }

  @inline(never)
  static func freed(_ p: RawPtr, use: Use, call: StaticString) -> Never {
    switch use {
    case .release: Diagnostics.doubleFree(call, p)
    case .access: Diagnostics.fatal(call, "use of freed pointer", p)
    }
  }
}
