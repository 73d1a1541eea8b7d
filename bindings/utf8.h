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
    // the end is kept for the next push. An answer that ends in the middle of
    // one drops it with the stream (its request), as
    // lamina.runtime.stream.TextStream.finish does.
    std::string push(const std::string& bytes);

private:
    std::string hold_;
};

}  // namespace lamina
