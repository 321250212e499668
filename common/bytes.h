// Little-endian encoding of file headers, independent of the host's byte order,
// and a reader that can never step past the end of its buffer.
#ifndef COMMON_BYTES_H
#define COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

void put_u32(uint8_t *p, uint32_t v);
void put_u64(uint8_t *p, uint64_t v);
void put_f32(uint8_t *p, float v);
uint32_t get_u32(const uint8_t *p);
uint64_t get_u64(const uint8_t *p);
float get_f32(const uint8_t *p);

// Sequential reader: every read checks the remaining length; after the first
// short read `ok` is 0 and all further reads return zeros.
typedef struct {
    const uint8_t *data;
    size_t len, pos;
    int ok;
} ByteReader;

void br_init(ByteReader *br, const void *data, size_t len);
uint32_t br_u32(ByteReader *br);
uint64_t br_u64(ByteReader *br);
float br_f32(ByteReader *br);
// Returns a pointer to the next n bytes and advances, or NULL if short.
const uint8_t *br_bytes(ByteReader *br, size_t n);

#endif
