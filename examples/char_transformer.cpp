// A character-level transformer learns to spell English words: the word list of Debian's
// wamerican package (lower-case a-z words), joined by '.' into one stream of 27 symbols. The
// model predicts the next character from the previous 16: token and position embeddings of
// width 64, 2 pre-norm blocks (4-head causal self-attention, a 64-256-64 MLP, residual
// connections), a final LayerNorm and a linear read-out; AdamW, minibatches of 32 windows.
// Reports the validation loss (per character, on held-out words) against a bigram model
// computed by the same program, then spells 20 new words.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using F = Tensor<float>;
constexpr std::int64_t kVocab = 27;  // '.' (0) and a..z (1..26)
constexpr std::int64_t kContext = 16;

std::vector<std::string> read_words(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read the word list " + path + " (apt install wamerican)");
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w);) {
    if (!w.empty() &&
        std::all_of(w.begin(), w.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; })) {
      words.push_back(w);
    }
  }
  return words;
}

// The words as one stream of symbols, each word followed by '.'.
std::vector<int> encode(const std::vector<std::string>& words) {
  std::vector<int> out{0};
  for (const auto& w : words) {
    for (char ch : w) out.push_back(ch - 'a' + 1);
    out.push_back(0);
  }
  return out;
}

// One pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(x)).
class Block : public nn::Module<float> {
 public:
  Block(std::int64_t width, std::int64_t heads, Generator& gen) {
    ln1_ = register_module("ln1", nn::LayerNorm<float>({static_cast<std::size_t>(width)}));
    attn_ =
        register_module("attn", nn::MultiheadAttention<float>(width, heads, {.causal = true}, gen));
    ln2_ = register_module("ln2", nn::LayerNorm<float>({static_cast<std::size_t>(width)}));
    auto w = static_cast<std::size_t>(width);
    fc1_ = register_module("fc1", nn::Linear<float>(w, 4 * w, true, gen));
    fc2_ = register_module("fc2", nn::Linear<float>(4 * w, w, true, gen));
  }
  F forward(const F& x) override {
    const F h = x + attn_(ln1_(x));
    return h + fc2_(gelu(fc1_(ln2_(h))));
  }

 private:
  nn::Handle<nn::LayerNorm<float>> ln1_, ln2_;
  nn::Handle<nn::MultiheadAttention<float>> attn_;
  nn::Handle<nn::Linear<float>> fc1_, fc2_;
};

class CharTransformer : public nn::Module<float> {
 public:
  CharTransformer(std::int64_t width, std::int64_t heads, std::int64_t blocks, Generator& gen) {
    tokens_ = register_module("tok_emb", nn::Embedding<float>(kVocab, width, gen));
    positions_ = register_module("pos_emb", nn::Embedding<float>(kContext, width, gen));
    for (std::int64_t b = 0; b < blocks; ++b) {
      blocks_.push_back(register_module("block" + std::to_string(b), Block(width, heads, gen)));
    }
    ln_ = register_module("ln_f", nn::LayerNorm<float>({static_cast<std::size_t>(width)}));
    head_ = register_module("head",
                            nn::Linear<float>(static_cast<std::size_t>(width), kVocab, true, gen));
  }
  // [B, T] symbols -> [B, T, 27] logits.
  F forward(const F& idx) override {
    const auto t = static_cast<std::int64_t>(idx.size(1));
    std::vector<std::int64_t> pos(static_cast<std::size_t>(t));
    for (std::int64_t i = 0; i < t; ++i) pos[static_cast<std::size_t>(i)] = i;
    F x = tokens_(idx) + embedding(pos, positions_->weight());
    for (auto& b : blocks_) x = b(x);
    return head_(ln_(x));
  }

 private:
  nn::Handle<nn::Embedding<float>> tokens_, positions_;
  std::vector<nn::Handle<Block>> blocks_;
  nn::Handle<nn::LayerNorm<float>> ln_;
  nn::Handle<nn::Linear<float>> head_;
};

// A batch of windows starting at random positions of `stream`: inputs [B, T] and the next
// symbol of each position, [B * T].
std::pair<F, std::vector<std::int64_t>> sample(const std::vector<int>& stream, std::size_t batch,
                                               std::mt19937_64& rng) {
  std::uniform_int_distribution<std::size_t> start(0, stream.size() - kContext - 2);
  Array<float> x = Array<float>::from_shape({batch, static_cast<std::size_t>(kContext)});
  std::vector<std::int64_t> y;
  for (std::size_t b = 0; b < batch; ++b) {
    const std::size_t s = start(rng);
    for (std::int64_t t = 0; t < kContext; ++t) {
      x(b, static_cast<std::size_t>(t)) =
          static_cast<float>(stream[s + static_cast<std::size_t>(t)]);
      y.push_back(stream[s + static_cast<std::size_t>(t) + 1]);
    }
  }
  return {F(std::move(x)), y};
}

// Mean loss per character over consecutive windows of `stream` (every symbol after the first
// window's is predicted once, from up to 16 symbols of context).
double evaluate(nn::Module<float>& model, const std::vector<int>& stream) {
  NoGradGuard no_grad;
  double total = 0;
  std::size_t count = 0;
  const std::size_t windows = (stream.size() - 1) / kContext;
  for (std::size_t first = 0; first < windows; first += 256) {
    const std::size_t n = std::min<std::size_t>(256, windows - first);
    Array<float> x = Array<float>::from_shape({n, static_cast<std::size_t>(kContext)});
    std::vector<std::int64_t> y;
    for (std::size_t b = 0; b < n; ++b) {
      for (std::int64_t t = 0; t < kContext; ++t) {
        const std::size_t at = (first + b) * kContext + static_cast<std::size_t>(t);
        x(b, static_cast<std::size_t>(t)) = static_cast<float>(stream[at]);
        y.push_back(stream[at + 1]);
      }
    }
    const F logits = model(F(std::move(x))).reshape({-1, kVocab});
    total += cross_entropy(logits, y, Reduction::Sum).item();
    count += y.size();
  }
  return total / static_cast<double>(count);
}

// The bigram model: P(next | previous) from the training stream's counts, add-one smoothed.
double bigram_loss(const std::vector<int>& train, const std::vector<int>& val) {
  std::vector<double> counts(kVocab * kVocab, 1.0);
  for (std::size_t i = 0; i + 1 < train.size(); ++i) counts[train[i] * kVocab + train[i + 1]] += 1;
  double loss = 0;
  for (std::size_t i = 0; i + 1 < val.size(); ++i) {
    double row = 0;
    for (std::int64_t j = 0; j < kVocab; ++j) row += counts[val[i] * kVocab + j];
    loss -= std::log(counts[val[i] * kVocab + val[i + 1]] / row);
  }
  return loss / static_cast<double>(val.size() - 1);
}

std::string spell(nn::Module<float>& model, std::mt19937_64& rng) {
  NoGradGuard no_grad;
  std::vector<int> context(kContext, 0);
  std::string word;
  while (word.size() < 24) {
    Array<float> x = Array<float>::from_shape({1, static_cast<std::size_t>(kContext)});
    for (std::int64_t t = 0; t < kContext; ++t) x(0, t) = static_cast<float>(context[t]);
    const F probs =
        softmax(model(F(std::move(x))).slice(1, kContext - 1, kContext).reshape({kVocab}), 0);
    std::discrete_distribution<int> pick(probs.value().begin(), probs.value().end());
    const int next = pick(rng);
    if (next == 0) break;
    word.push_back(static_cast<char>('a' + next - 1));
    context.erase(context.begin());
    context.push_back(next);
  }
  return word;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Character-level transformer on the wamerican word list"};
  examples::Flags flags{3000, 3e-3, 32};  // --epochs counts optimisation steps here
  examples::add_common_flags(app, flags);
  std::string words_path = "/usr/share/dict/american-english";
  app.add_option("--words", words_path, "word list, one word per line")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto out = examples::prepare(flags);
  const int steps = flags.epochs;

  auto words = read_words(words_path);
  std::mt19937_64 rng(flags.seed);
  std::shuffle(words.begin(), words.end(), rng);
  const std::size_t n_val = words.size() / 10;
  const auto val = encode({words.begin(), words.begin() + static_cast<std::ptrdiff_t>(n_val)});
  const auto train = encode({words.begin() + static_cast<std::ptrdiff_t>(n_val), words.end()});
  std::printf("%zu words: %zu training and %zu validation symbols, %d thread(s)\n", words.size(),
              train.size(), val.size(), get_num_threads());

  Generator gen(flags.seed);
  CharTransformer model(64, 4, 2, gen);
  std::printf("%s", model.summary().c_str());
  optim::AdamW<float> opt(model.parameters(), {.lr = flags.lr, .weight_decay = 0.01});
  optim::CosineAnnealingLR<float> schedule(opt, steps);
  const double bigram = bigram_loss(train, val);

  std::vector<double> at, train_loss, val_loss;
  double running = 0;
  int since = 0;
  for (int step = 1; step <= steps; ++step) {
    auto [x, y] = sample(train, flags.batch_size, rng);
    opt.zero_grad();
    F loss = cross_entropy(model(x).reshape({-1, kVocab}), y);
    loss.backward();
    opt.step();
    schedule.step();
    running += loss.item();
    ++since;
    if (step % 500 == 0 || step == steps) {
      model.eval();
      const double v = evaluate(model, val);
      model.train();
      at.push_back(step);
      train_loss.push_back(running / since);
      val_loss.push_back(v);
      std::printf("step %5d  train loss %.4f  validation loss %.4f  (bigram %.4f)\n", step,
                  running / since, v, bigram);
      std::fflush(stdout);
      running = 0;
      since = 0;
    }
  }
  if (val_loss.empty()) return 0;
  std::printf("validation loss %.4f per character against %.4f for the bigram model\n",
              val_loss.back(), bigram);
  model.eval();
  std::printf("20 words it spells:");
  for (int i = 0; i < 20; ++i) std::printf(" %s", spell(model, rng).c_str());
  std::printf("\n");
  viz::line_plot_svg((out / "char_transformer_loss.svg").string(),
                     {{"training loss", at, train_loss},
                      {"validation loss", at, val_loss},
                      {"bigram", at, std::vector<double>(at.size(), bigram)}},
                     {"Character transformer: loss per character", "step", "cross-entropy"});
  std::printf("wrote %s\n", (out / "char_transformer_loss.svg").c_str());
  return 0;
}
