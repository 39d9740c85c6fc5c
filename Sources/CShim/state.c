/* state.c: the storage behind swm_state() (see swm_shim.h). This file does
 * not include the header: the header names the block by a one-byte alias. */
_Alignas(64) unsigned char swm_state_blob_bytes[128u * 1024u] __asm__("swm_state_blob")
    __attribute__((visibility("hidden")));
