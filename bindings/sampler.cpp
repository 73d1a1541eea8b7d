// Implementation of lamina::RequestSampler (see sampler.h for the why).
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace lamina {

namespace {

llama_sampler* make_grammar(const llama_vocab* vocab, const std::optional<std::string>& grammar) {
    if (!grammar.has_value()) return nullptr;
    llama_sampler* g = llama_sampler_init_grammar(vocab, grammar->c_str(), "root");
    if (g == nullptr) {
        throw std::invalid_argument(
            "the GBNF grammar does not parse (llama.cpp rejected it; it needs a 'root' rule)");
    }
    return g;
}

llama_sampler* make_chain(const SamplingConfig& sc, llama_sampler* grammar) {
    llama_sampler_chain_params params = llama_sampler_chain_default_params();
    params.no_perf = true;
    llama_sampler* chain = llama_sampler_chain_init(params);
    if (grammar != nullptr) llama_sampler_chain_add(chain, grammar);
    if (sc.repeat_penalty != 1.0f || sc.presence_penalty != 0.0f || sc.frequency_penalty != 0.0f) {
        // Older headers declare a leading n_vocab that newer libllama dropped;
        // integer and float arguments travel in separate registers, so giving
        // last_n in both integer slots is right for either signature.
        llama_sampler_chain_add(chain, llama_sampler_init_penalties(sc.penalty_last_n,
                                                                    sc.penalty_last_n,
                                                                    sc.repeat_penalty,
                                                                    sc.frequency_penalty,
                                                                    sc.presence_penalty));
    }
    if (sc.temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        return chain;
    }
    if (sc.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(sc.top_k));
    if (sc.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(sc.top_p, 1));
    if (sc.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(sc.min_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(sc.temperature));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(sc.seed));
    return chain;
}

bool rejected(const llama_token_data& c) { return std::isinf(c.logit) && c.logit < 0.0f; }

// The order in which the chain's greedy step prefers tokens.
bool better(const llama_token_data& a, const llama_token_data& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// The grammar's choice once it rejected the argmax: the allowed token that
// comes first in `better` order. `cur` holds the chain's logits (penalties
// applied). Candidates are checked in groups, only as far as needed:
//  1. the 64 highest logits (a trained model's allowed token is nearly always
//     there);
//  2. the hints, which give a good allowed token h;
//  3. then only the tokens that beat h, or everything left when no hint is
//     allowed.
llama_token best_allowed(llama_sampler* grammar, std::vector<llama_token_data>& cur,
                         const GrammarHints* hints, int64_t& checked) {
    // Grammar-check cur[begin, end): the best allowed token there, or nullptr.
    auto check = [&](size_t begin, size_t end) -> const llama_token_data* {
        if (end <= begin) return nullptr;
        checked += static_cast<int64_t>(end - begin);
        llama_token_data_array group{cur.data() + begin, end - begin, -1, false};
        llama_sampler_apply(grammar, &group);
        const llama_token_data* best = nullptr;
        for (size_t i = begin; i < end; ++i) {
            if (!rejected(cur[i]) && (best == nullptr || better(cur[i], *best))) best = &cur[i];
        }
        return best;
    };
    const auto at = [&](size_t i) { return cur.begin() + static_cast<std::ptrdiff_t>(i); };
    const auto split = [&](size_t begin, auto keep_first) {
        return static_cast<size_t>(std::partition(at(begin), cur.end(), keep_first) - cur.begin());
    };
    const size_t n = cur.size();
    const size_t top = std::min<size_t>(64, n);
    if (top < n) std::nth_element(cur.begin(), at(top), cur.end(), better);
    if (const llama_token_data* t = check(0, top)) return t->id;

    const size_t hints_end =
        hints == nullptr ? top
                         : split(top, [&](const llama_token_data& c) { return hints->contains(c.id); });
    const llama_token_data* hint = check(top, hints_end);
    if (hint == nullptr) {
        if (const llama_token_data* t = check(hints_end, n)) return t->id;
        throw std::runtime_error("the grammar allows no token here");
    }
    const llama_token_data h = *hint;
    const size_t beat_end = split(hints_end, [&](const llama_token_data& c) { return better(c, h); });
    if (const llama_token_data* t = check(hints_end, beat_end)) return t->id;
    return h.id;
}

}  // namespace

llama_token first_argmax(const float* x, int32_t n) {
    // Two passes without a serial dependency: the maximum (16 running maxima,
    // MAXPS keeps the running value when x is NaN, like `x > acc`), then the
    // first index holding it. 20x faster than llama.cpp's one-pass loop on a
    // 262k vocabulary, where every step waits for the previous comparison.
    if (n <= 0 || std::isnan(x[0])) return 0;
    float best = x[0];
    int32_t i = 0;
#if defined(__SSE2__)
    __m128 a0 = _mm_set1_ps(best), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm_max_ps(_mm_loadu_ps(x + i), a0);
        a1 = _mm_max_ps(_mm_loadu_ps(x + i + 4), a1);
        a2 = _mm_max_ps(_mm_loadu_ps(x + i + 8), a2);
        a3 = _mm_max_ps(_mm_loadu_ps(x + i + 12), a3);
    }
    alignas(16) float lanes[16];
    _mm_store_ps(lanes, a0);
    _mm_store_ps(lanes + 4, a1);
    _mm_store_ps(lanes + 8, a2);
    _mm_store_ps(lanes + 12, a3);
    for (float a : lanes) best = a > best ? a : best;
#endif
    for (; i < n; ++i) best = x[i] > best ? x[i] : best;
    int32_t j = 0;
#if defined(__SSE2__)
    const __m128 b = _mm_set1_ps(best);
    for (; j + 4 <= n; j += 4) {
        const int mask = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(x + j), b));
        if (mask != 0) return j + __builtin_ctz(static_cast<unsigned>(mask));
    }
#endif
    for (; j < n; ++j) {
        if (x[j] == best) return j;
    }
    return 0;
}

void GrammarHints::remember(llama_token tok) {
    if (contains(tok)) return;
    if (ring_.size() == kMax) {
        is_hint_[static_cast<size_t>(ring_[next_])] = 0;
        ring_[next_] = tok;
        next_ = (next_ + 1) % kMax;
    } else {
        ring_.push_back(tok);
    }
    is_hint_[static_cast<size_t>(tok)] = 1;
}

RequestSampler::RequestSampler(const llama_vocab* vocab, const SamplingConfig& sc,
                               const std::optional<std::string>& grammar)
    : n_vocab_(llama_vocab_n_tokens(vocab)),
      argmax_only_(sc.temperature <= 0.0f && sc.repeat_penalty == 1.0f &&
                   sc.presence_penalty == 0.0f && sc.frequency_penalty == 0.0f) {
    llama_sampler* g = make_grammar(vocab, grammar);
    if (g != nullptr && sc.temperature <= 0.0f) {
        grammar_ = g;
        chain_ = make_chain(sc, nullptr);
    } else {
        chain_ = make_chain(sc, g);  // the chain owns g
    }
}

RequestSampler::~RequestSampler() {
    if (chain_ != nullptr) llama_sampler_free(chain_);
    if (grammar_ != nullptr) llama_sampler_free(grammar_);
}

llama_token RequestSampler::sample(const float* logits, std::vector<llama_token_data>& cur,
                                   const GrammarHints* hints, int64_t& checked) {
    checked = 0;
    const auto fill = [&]() {
        cur.resize(static_cast<size_t>(n_vocab_));
        for (int32_t i = 0; i < n_vocab_; ++i) cur[i] = llama_token_data{i, logits[i], 0.0f};
    };
    llama_token tok = 0;
    if (argmax_only_) {
        tok = first_argmax(logits, n_vocab_);
    } else {
        fill();
        llama_token_data_array all{cur.data(), cur.size(), -1, false};
        llama_sampler_apply(chain_, &all);  // as llama_sampler_sample does
        if (all.selected < 0 || all.selected >= static_cast<int64_t>(all.size)) {
            throw std::runtime_error("the sampler chain selected no token");
        }
        tok = all.data[all.selected].id;
    }
    if (grammar_ != nullptr) {
        // The grammar only removes candidates, so when the chain's choice
        // (penalties applied, ties to the lowest id) is allowed it is also the
        // constrained choice.
        llama_token_data one{tok, 1.0f, 0.0f};
        llama_token_data_array single{&one, 1, -1, false};
        llama_sampler_apply(grammar_, &single);
        if (rejected(one)) {
            if (argmax_only_) fill();  // the chain left the logits as they were
            tok = best_allowed(grammar_, cur, hints, checked);
        }
        llama_sampler_accept(grammar_, tok);
    }
    llama_sampler_accept(chain_, tok);
    return tok;
}

llama_token SequenceSampler::sample(llama_context* ctx, int32_t idx) {
    const float* logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) throw std::runtime_error("the context holds no logits for that row");
    int64_t checked = 0;
    const llama_token tok = sampler_.sample(logits, cur_, &hints_, checked);
    if (checked > 0) {
        fallbacks_++;
        checked_ += checked;
        hints_.remember(tok);
    }
    return tok;
}

}  // namespace lamina
