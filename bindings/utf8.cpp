#include "utf8.h"

#include <cstddef>
#include <cstdint>

namespace lamina {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// How many bytes a character with lead byte b has (0: b cannot start one), and
// the allowed range of its second byte (Unicode Table 3-7).
int sequence_length(uint8_t b, uint8_t& lo, uint8_t& hi) {
    lo = 0x80;
    hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b == 0xE0) { lo = 0xA0; return 3; }
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return 3;
    if (b == 0xED) { hi = 0x9F; return 3; }
    if (b == 0xF0) { lo = 0x90; return 4; }
    if (b >= 0xF1 && b <= 0xF3) return 4;
    if (b == 0xF4) { hi = 0x8F; return 4; }
    return 0;
}

}  // namespace

std::string Utf8Stream::push(const std::string& bytes) {
    const std::string s = hold_ + bytes;
    hold_.clear();
    std::string out;
    out.reserve(s.size());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const auto b = static_cast<uint8_t>(s[i]);
        uint8_t lo = 0, hi = 0;
        const int len = sequence_length(b, lo, hi);
        if (len == 1) {
            out += s[i++];
            continue;
        }
        if (len == 0) {  // a byte no character starts with
            out += kReplacement;
            ++i;
            continue;
        }
        // Take continuation bytes while they fit; stop at the first that does not.
        size_t j = i + 1;
        bool bad = false;
        for (int k = 1; k < len; ++k, ++j) {
            if (j == n) break;  // unfinished: keep what we have for the next push
            const auto c = static_cast<uint8_t>(s[j]);
            const uint8_t low = k == 1 ? lo : 0x80, high = k == 1 ? hi : 0xBF;
            if (c < low || c > high) {
                bad = true;
                break;
            }
        }
        if (bad && b == 0xED && j == i + 1 && j + 1 == n &&
            static_cast<uint8_t>(s[j]) >= 0xA0 && static_cast<uint8_t>(s[j]) <= 0xBF) {
            // A surrogate's first two bytes at the end: CPython's incremental decoder
            // waits for more before it replaces them, so this does too.
            hold_ = s.substr(i);
            break;
        }
        if (bad) {  // the maximal subpart [i, j) is one replacement; j starts anew
            out += kReplacement;
            i = j;
        } else if (j - i < static_cast<size_t>(len)) {
            hold_ = s.substr(i);
            break;
        } else {
            out.append(s, i, j - i);
            i = j;
        }
    }
    return out;
}

}  // namespace lamina
