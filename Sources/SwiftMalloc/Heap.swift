import CShim

// See Malloc.swift for an overview.

/// The allocator's whole state: one value of each layer's own state type.
///
/// It lives in the zero-initialised static block swm_state() (state.c), so it
/// exists before any constructor runs, and all-zero is its valid "not yet
/// initialised" value; Heap.initialize checks once that it fits the block.
/// C only provides the storage; Swift lays it out.
///
/// Ownership: each layer's State is written only by that layer's file, under
/// the lock its State names. Configuration flows one way: Options writes the
/// settings each layer reads (the route's thresholds, the page heap's trim
/// settings, the mitigations) at start and in mallopt, under the init lock;
/// no layer below writes configuration back.
struct HeapState {
  // MARK: read on every malloc and free
  /// Where requests go (Route.swift); `route.smallLimit` is the first word.
  var route: Route.State
  /// XOR key of the tag written into word 1 of a freed small block. A read
  /// after free can learn it, so it keys nothing else.
  var tagSecret: UInt
  /// Key of the span free-list links and of secure mode's canaries and size
  /// words; drawn apart from tagSecret and never written into a block.
  var keySecret: UInt

  // MARK: configuration (init lock)
  var options: Options.State
  var mitigations: Mitigations
  var initialized: UInt

  // MARK: the layers, front to back
  /// The dead thread cache: empty bins with limit 0 (ThreadCache.swift).
  var deadCache: ClassArray<Bin>
  var caches: Budget.State
  var central: ClassArray<CentralFreeList>
  var pageHeap: PageHeapState
  var large: LargeBlocks.State
  var zero: ZeroBlocks.State
  var os: OSMemory.State
  var meta: Meta.State
  var quarantine: Quarantine.State
  /// Peaks for the statistics (API/Stats.swift).
  var stats: Stats.State
}

/// One element per size class (index 0 unused); SWM_NUM_CLASSES must be 41,
/// checked by Heap.initialize (an InlineArray's count is a literal).
typealias ClassArray<T> = InlineArray<41, T>

enum Heap {
  /// Larger requests fail with ENOMEM before any arithmetic on them.
  static let maxRequest: UInt = 1 << 46

  @inline(__always)
  static var state: UnsafeMutablePointer<HeapState> {
    swm_state().assumingMemoryBound(to: HeapState.self)
  }

  /// Sets defaults, reads the environment, draws the keys. Runs on the
  /// first slow path (which may precede every constructor): no stdio, no
  /// getenv, no malloc.
  @inline(__always)
  static func ensureInitialized() {
    if state.pointee.initialized == 0 { initialize() }
  }

  /// The first allocation's set-up, then (with no lock held, since
  /// pthread_atfork may allocate) the fork handlers.
  @inline(never)
  private static func initialize() {
    initializeState()
    swm_lifecycle_init()
  }

  /// The process's page heap: its state here, over the OS (OSMemory),
  /// behind the page-heap lock. Each layer above reaches it through this.
  @inline(__always)
  static var pageHeap: PageHeap<ProcessPageHeap> { PageHeap(site: pageHeapSite) }

  /// Where the process's page heap lives, for Options to write its
  /// settings (PageHeapSite.configure). Not through the generic handle:
  /// Options runs first from a C constructor, which in the hosted test
  /// build comes before the Swift runtime can instantiate generic types.
  @inline(__always)
  static var pageHeapSite: ProcessPageHeap { ProcessPageHeap() }

  /// Decay for a program whose traffic the thread caches serve: their slow
  /// paths call this now and then (ThreadCache). Kept mmap blocks past the
  /// decay time are unmapped, and the page heap decays (never waiting for
  /// its lock).
  @inline(never)
  static func tick() {
    LargeBlocks.trimCache(all: false)
    pageHeap.tick()
  }

  /// Gives the calling thread's cached blocks, the quarantine's ready lists
  /// and every class's kept empty span back to the page heap (malloc_trim, and before failing a request).
  static func releaseCachedMemory() {
    if let cache = ThreadCache.existing() { ThreadCache.flush(cache) }
    if state.pointee.mitigations.quarantine { Quarantine.releaseReady() }
    Central.releaseEmptySpans()
  }

  private static func initializeState() {
    let lock = swm_lock_at(UInt32(SWM_LOCK_INIT))
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if state.pointee.initialized != 0 { return }
    if MemoryLayout<HeapState>.size > Int(swm_state_bytes()) || ClassArray<Bin>.count != Int(SWM_NUM_CLASSES)
      || InlineArray<4, Quarantine.Shard>.count != Int(swm_quarantine_shards())
      || ThreadCache.binsBytes > Int(SWM_FRESH_CACHE_BYTES) || MemoryLayout<Span>.stride > Int(Meta.spanBytes) {
      Diagnostics.fatal("init", "state block too small", nil)
    }
    Options.initialize()
    state.pointee.tagSecret = UInt(swm_sys_random()) | 1
    state.pointee.keySecret = UInt(swm_sys_random())
    state.pointee.initialized = 1
  }
}

/// The process's page heap's site: its state in HeapState, the page-heap
/// lock, the OS below it. It holds nothing: every address is fixed, so
/// PageHeap<ProcessPageHeap> costs what static functions would.
struct ProcessPageHeap: PageHeapSite {
  @inline(__always) var state: UnsafeMutablePointer<PageHeapState> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.pageHeap) { $0 }
  }
  @inline(__always) var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(swm_lock_index_pageheap()) }
  @inline(__always) var source: OSMemory { OSMemory() }
}
