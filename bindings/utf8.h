// Incremental UTF-8 text from token bytes, the way Python's
// codecs.getincrementaldecoder("utf-8")(errors="replace") makes it.
//
// Why here: a token's piece can end in the middle of a character (SentencePiece
// byte-fallback tokens carry one byte each; a Chinese character is three), and
// the engine hands every step's text to Python already whole, so the Python side
// does no byte handling per token. Ill-formed bytes become U+FFFD, one per
// maximal subpart (Unicode 15, section 3.9, as CPython does), so the text equals
// what Python's decoder gives for the same bytes, however they are cut.
#pragma once

#include <string>

namespace lamina {

class Utf8Stream {
public:
    // The text the bytes so far complete; a valid but unfinished character at
    // the end is kept for the next push.
    std::string push(const std::string& bytes);
    // Forget a kept unfinished character (the answer ended in the middle of it:
    // it is dropped, as lamina.runtime.stream.TextStream.finish does).
    void reset() { hold_.clear(); }
    bool holding() const { return !hold_.empty(); }

private:
    std::string hold_;
};

}  // namespace lamina
