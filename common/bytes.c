#include "common/bytes.h"

#include <string.h>

void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void put_f32(uint8_t *p, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(p, u);
}

uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

float get_f32(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

void br_init(ByteReader *br, const void *data, size_t len) {
    br->data = data;
    br->len = len;
    br->pos = 0;
    br->ok = 1;
}

const uint8_t *br_bytes(ByteReader *br, size_t n) {
    if (!br->ok || n > br->len - br->pos) {
        br->ok = 0;
        return NULL;
    }
    const uint8_t *p = br->data + br->pos;
    br->pos += n;
    return p;
}

uint32_t br_u32(ByteReader *br) {
    const uint8_t *p = br_bytes(br, 4);
    return p ? get_u32(p) : 0;
}

uint64_t br_u64(ByteReader *br) {
    const uint8_t *p = br_bytes(br, 8);
    return p ? get_u64(p) : 0;
}

float br_f32(ByteReader *br) {
    const uint8_t *p = br_bytes(br, 4);
    return p ? get_f32(p) : 0.0f;
}
