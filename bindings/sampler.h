// Sampling one sequence's next token, shared by the batch engine and by
// lamina's one-at-a-time generation loop (exposed to Python as _native.Sampler).
//
// Why a C++ sampler at all: llama.cpp's grammar sampler checks every candidate
// it is given (~60 ns each), so a grammar in the usual chain costs ~2 ms per
// token on a 32000-token vocabulary, more than decoding a small model. For
// greedy decoding the constrained choice is simply the best allowed token, so
// RequestSampler checks the argmax first and, when the grammar rejects it,
// only as many candidates as it must (see best_allowed in sampler.cpp).
#pragma once

#include <llama.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lamina {

// Sampler settings of one request (mirrors lamina.runtime.sampling.SamplingParams;
// stop strings are handled in Python on the detokenized stream).
// llama.cpp's greedy choice (llama_sampler_greedy_apply: the first index whose
// value is larger than every earlier one's; a NaN is never chosen unless x[0]
// is one), computed without copying the row into candidates.
llama_token first_argmax(const float* x, int32_t n);

struct SamplingConfig {
    float temperature = 0.8f;
    int32_t top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.1f;
    float presence_penalty = 0.0f;   // OpenAI's: minus this once a token was generated
    float frequency_penalty = 0.0f;  // minus this per time it was generated
    int32_t penalty_last_n = 64;     // generated tokens the penalties look back over
    int32_t max_tokens = 512;     // <= 0: until the sequence's context is full
    uint32_t seed = LLAMA_DEFAULT_SEED;
};

// Tokens that recent grammar fallbacks ended on (a ring of kMax): the
// punctuation and key characters a grammar forces, worth checking early.
class GrammarHints {
public:
    explicit GrammarHints(int32_t n_vocab) : is_hint_(static_cast<size_t>(n_vocab), 0) {}
    bool contains(llama_token tok) const { return is_hint_[static_cast<size_t>(tok)] != 0; }
    void remember(llama_token tok);

private:
    static constexpr size_t kMax = 256;
    std::vector<char> is_hint_;  // per vocabulary id
    std::vector<llama_token> ring_;
    size_t next_ = 0;
};

// The sampler chain of one request, built in the order of
// lamina.runtime.sampling.build_sampler: grammar, penalties, then the argmax,
// or top-k/top-p/min-p/temperature and the seeded pick. Greedy requests keep
// their grammar out of the chain (see the file comment): the same tokens.
class RequestSampler {
public:
    // Throws std::invalid_argument for a grammar that does not parse.
    RequestSampler(const llama_vocab* vocab, const SamplingConfig& sc,
                   const std::optional<std::string>& grammar);
    ~RequestSampler();
    RequestSampler(const RequestSampler&) = delete;
    RequestSampler& operator=(const RequestSampler&) = delete;

    // Pick the next token from one row of logits and accept it into the
    // samplers. `cur` is scratch space (n_vocab entries); `hints` may be
    // null; `checked` receives the candidates a grammar fallback checked (0
    // when the argmax was allowed or there is no grammar). Touches nothing
    // but this sampler and `cur`, so different requests may sample in parallel.
    llama_token sample(const float* logits, std::vector<llama_token_data>& cur,
                       const GrammarHints* hints, int64_t& checked);

private:
    int32_t n_vocab_ = 0;
    llama_sampler* chain_ = nullptr;
    llama_sampler* grammar_ = nullptr;  // greedy with a grammar only
    // Greedy without penalties: the chain is llama.cpp's greedy sampler alone,
    // whose choice is the first largest logit, so it is read off the row
    // directly instead of copying n_vocab candidates (3 MB a token for
    // Gemma's 262k vocabulary) for the chain to scan.
    bool argmax_only_ = false;
};

// A RequestSampler for one sequence decoded on its own (Model.generate):
// reads the logits from the context and keeps its own hints.
class SequenceSampler {
public:
    SequenceSampler(const llama_vocab* vocab, const SamplingConfig& sc,
                    const std::optional<std::string>& grammar)
        : sampler_(vocab, sc, grammar), hints_(llama_vocab_n_tokens(vocab)) {}

    // The next token from output row `idx` of the last llama_decode (-1: the last row).
    llama_token sample(llama_context* ctx, int32_t idx);

    int64_t grammar_fallbacks() const { return fallbacks_; }
    int64_t grammar_checked() const { return checked_; }

private:
    RequestSampler sampler_;
    GrammarHints hints_;
    std::vector<llama_token_data> cur_;
    int64_t fallbacks_ = 0;
    int64_t checked_ = 0;
};

}  // namespace lamina
