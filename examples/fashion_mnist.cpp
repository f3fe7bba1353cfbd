// The main demo: an MLP 784-256-128-10 with ReLU learns Fashion-MNIST (Debian's
// dataset-fashion-mnist) with cross-entropy and SGD with momentum, in minibatches of 64; the
// learning rate follows a cosine from --lr to 0 over the epochs. Shows a progress bar per epoch
// and the test accuracy after each; writes the loss/accuracy plots and a safetensors checkpoint
// of the trained model.
//
// After every epoch it saves a training checkpoint (--checkpoint, by default
// <out>/fashion_mnist.ckpt.safetensors: model, optimiser, schedule, shuffling and random state);
// `--resume PATH` continues an interrupted run from one (with the same flags), ending exactly as
// the uninterrupted run would have; the saved learning-rate schedule is kept even if --epochs
// changes.
//
// `mpirun -np N fashion_mnist --distributed` trains data-parallel on N processes: each takes its
// share of every batch of --batch-size (a multiple of N) and the gradients are averaged across
// processes during backward, so the run follows the single-process one. Process 0 prints, plots
// and saves; a checkpoint resumes under any number of processes.

#include <cstdio>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>

#include <xgrad/data/data.hpp>
#include <xgrad/io/checkpoint.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using F = Tensor<float>;

double accuracy(nn::Module<float>& model, const data::FashionMnist<float>& set) {
  NoGradGuard no_grad;
  model.eval();
  const auto predicted = argmax(model(set.images), 1).value();
  std::size_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) {
    correct += predicted(i) == set.labels.value()(i);
  }
  model.train();
  return set.labels.numel() ? static_cast<double>(correct) / set.labels.numel() : 0.0;
}

/// "0.5,0.25" and back: the per-epoch history, kept in the checkpoint's metadata.
std::string join(const std::vector<double>& v) {
  std::ostringstream out;
  out.precision(17);
  for (std::size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
  return out.str();
}
std::vector<double> split(const std::string& s) {
  std::vector<double> out;
  std::istringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stod(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Fashion-MNIST: MLP 784-256-128-10, cross-entropy, SGD with momentum"};
  examples::Flags flags{10, 0.05, 64};
  examples::add_common_flags(app, flags);
  double momentum = 0.9;
  std::size_t limit = 0;
  std::string data_dir = data::kFashionMnistDir;
  app.add_option("--momentum", momentum, "SGD momentum")->capture_default_str();
  app.add_option("--limit", limit, "use only the first N training images (0: all)");
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files")
      ->capture_default_str();
  std::string checkpoint_path, resume;
  app.add_option("--checkpoint", checkpoint_path,
                 "training checkpoint written after every epoch (default: "
                 "<out>/fashion_mnist.ckpt.safetensors)");
  app.add_option("--resume", resume, "continue the run saved in this training checkpoint");
  bool profile = false;
  app.add_flag("--profile", profile,
               "profile the first epoch: time per op, products and their GEMM floor");
  bool distributed = false;
#if XGRAD_HAS_DISTRIBUTED
  app.add_flag("--distributed", distributed,
               "data-parallel over the processes of `mpirun -np N` (--batch-size is the total)");
#endif
  CLI11_PARSE(app, argc, argv);
  int rank = 0, processes = 1;
#if XGRAD_HAS_DISTRIBUTED
  std::optional<dist::ProcessGroup> world;
  if (distributed) {
    world = dist::init(argc, argv);
    rank = world->rank();
    processes = world->size();
    // Processes share the machine's cores: one thread each unless --threads says otherwise.
    if (flags.threads == 0) flags.threads = 1;
    if (flags.batch_size % static_cast<std::size_t>(processes) != 0) {
      std::fprintf(stderr, "--batch-size %zu does not divide over %d processes\n", flags.batch_size,
                   processes);
      return 2;
    }
  }
#endif
  const bool lead = rank == 0;  // the process that prints, plots and saves
  const auto out = examples::prepare(flags);
  if (checkpoint_path.empty()) checkpoint_path = (out / "fashion_mnist.ckpt.safetensors").string();

  const auto train = data::load_fashion_mnist<float>(data_dir, true, limit);
  const auto test = data::load_fashion_mnist<float>(data_dir, false, limit ? limit / 6 : 0);
  if (lead) {
    std::printf(
        "Fashion-MNIST: %zu training and %zu test images, %d process(es) of %d "
        "thread(s)\n",
        train.labels.numel(), test.labels.numel(), processes, get_num_threads());
  }

  Generator gen(flags.seed);
  nn::MLP<float> model({784, 256, 128, 10}, nn::Act::ReLU, nn::Act::Identity, gen);
  if (lead) std::printf("%s", model.summary().c_str());
  optim::SGD<float> sgd(model.parameters(), {.lr = flags.lr, .momentum = momentum});
  // Cosine decay to 0 over the run: the last epochs take small steps and settle the weights.
  optim::CosineAnnealingLR<float> schedule(sgd, flags.epochs);
  const data::DataLoaderOptions batching{
      .batch_size = flags.batch_size / processes, .shuffle = true, .seed = flags.seed};
#if XGRAD_HAS_DISTRIBUTED
  std::optional<dist::DataParallel<float>> ddp;
  auto loader = world ? data::DataLoader<float>(train.images, train.labels, batching,
                                                dist::DistributedSampler(*world))
                      : data::DataLoader<float>(train.images, train.labels, batching);
  if (world) ddp.emplace(model, *world);
#else
  data::DataLoader<float> loader(train.images, train.labels, batching);
#endif

  std::vector<double> epoch_loss, test_accuracy;
  io::Checkpoint<float> state{
      .model = &model, .optimizer = &sgd, .scheduler = &schedule, .loader = &loader};
  if (!resume.empty()) {
    io::load_checkpoint(state, resume);
    epoch_loss = split(state.metadata["loss"]);
    test_accuracy = split(state.metadata["accuracy"]);
    if (lead) {
      std::printf("resuming %s after epoch %lld\n", resume.c_str(),
                  static_cast<long long>(state.epoch));
    }
  }
  for (int epoch = static_cast<int>(state.epoch) + 1; epoch <= flags.epochs; ++epoch) {
    std::ostream quiet(nullptr);  // the other processes' bars write nowhere
    viz::ProgressBar bar(loader.size(), "epoch " + std::to_string(epoch), lead ? std::cout : quiet);
    double loss_sum = 0;
    std::size_t seen = 0, batches = 0;
    std::optional<profiler::Profile> prof;
    if (profile && lead && epoch == static_cast<int>(state.epoch) + 1) prof.emplace();
    for (const auto& batch : loader) {
      sgd.zero_grad();
      auto loss = cross_entropy(model(batch.inputs), batch.targets);
      loss.backward();
      sgd.step();
      loss_sum += loss.item();
      seen += batch.targets.numel() * static_cast<std::size_t>(processes);
      ++batches;
      bar.update(batches, loss_sum / static_cast<double>(batches), seen);
    }
    if (prof) examples::print_profile(*prof, epoch, batches, 16);
    schedule.step();
#if XGRAD_HAS_DISTRIBUTED
    if (world) world->all_reduce(std::span<double>(&loss_sum, 1), dist::ReduceOp::mean);
#endif
    epoch_loss.push_back(loss_sum / static_cast<double>(batches));
    test_accuracy.push_back(accuracy(model, test));
    char summary[96];
    std::snprintf(summary, sizeof summary, "test accuracy %.2f%%", 100 * test_accuracy.back());
    bar.finish(summary);
    state.epoch = epoch;
    state.metadata = {{"loss", join(epoch_loss)}, {"accuracy", join(test_accuracy)}};
    if (lead) io::save_checkpoint(state, checkpoint_path);
  }
  if (!lead) return 0;
  if (test_accuracy.empty()) {
    std::printf("nothing to do: the run had already done %lld of %d epochs\n",
                static_cast<long long>(state.epoch), flags.epochs);
    return 0;
  }
  std::printf("final test accuracy %.2f%%\n", 100 * test_accuracy.back());

  std::vector<double> epochs;
  for (std::size_t e = 1; e <= epoch_loss.size(); ++e) epochs.push_back(static_cast<double>(e));
  viz::line_plot_svg((out / "fashion_mnist_loss.svg").string(),
                     {{"training loss", epochs, epoch_loss}},
                     {"Fashion-MNIST MLP: training loss", "epoch", "cross-entropy"});
  viz::line_plot_svg((out / "fashion_mnist_accuracy.svg").string(),
                     {{"test accuracy", epochs, test_accuracy}},
                     {"Fashion-MNIST MLP: test accuracy", "epoch", "accuracy"});
  const auto checkpoint = out / "fashion_mnist.safetensors";
  io::save(model, checkpoint.string());
  std::printf("wrote %s, %s and %s\n", (out / "fashion_mnist_loss.svg").c_str(),
              (out / "fashion_mnist_accuracy.svg").c_str(), checkpoint.c_str());
  return 0;
}
