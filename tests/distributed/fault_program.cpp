// A data-parallel run that loses a process: fault_test.sh starts it under mpirun, process 1 kills
// itself (SIGKILL) right after process 0 saved the checkpoint of epoch --die-after, and the job
// must end with a non-zero status instead of hanging. Then the run resumes from that checkpoint
// under another number of processes and finishes.
//
//   fault_program --checkpoint PATH [--die-after E] [--resume] [--epochs N]

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include <xgrad/xgrad.hpp>

using namespace xgrad;

int main(int argc, char** argv) {
  std::string checkpoint;
  int die_after = -1;
  int epochs = 6;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--checkpoint" && i + 1 < argc) {
      checkpoint = argv[++i];
    } else if (arg == "--die-after" && i + 1 < argc) {
      die_after = std::atoi(argv[++i]);
    } else if (arg == "--epochs" && i + 1 < argc) {
      epochs = std::atoi(argv[++i]);
    } else if (arg == "--resume") {
      resume = true;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  auto world = dist::init(argc, argv);
  Generator data_gen(5);
  auto x = Tensor<float>::randn({512, 6}, data_gen);
  auto y = Tensor<float>::from(std::vector<float>(512, 0.0f), {512});
  for (std::size_t i = 0; i < 512; ++i) {
    y.mutable_value()(i) = x.value()(i, 0) > 0 ? 1.0f : 0.0f;
  }
  Generator gen(1);
  nn::MLP<float> model({6, 16, 2}, nn::Act::Tanh, nn::Act::Identity, gen);
  dist::DataParallel<float> ddp(model, world);
  optim::SGD<float> opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  const auto per_process = static_cast<std::size_t>(32 / world.size());
  data::DataLoader<float> loader(x, y, {.batch_size = per_process, .shuffle = true, .seed = 3},
                                 dist::DistributedSampler(world));
  io::Checkpoint<float> state{.model = &model, .optimizer = &opt, .loader = &loader};
  if (resume) {
    io::load_checkpoint(state, checkpoint);
    if (world.rank() == 0) {
      std::printf("resumed after epoch %lld on %d process(es)\n",
                  static_cast<long long>(state.epoch), world.size());
    }
  }
  double loss_sum = 0;
  for (int epoch = static_cast<int>(state.epoch) + 1; epoch <= epochs; ++epoch) {
    loss_sum = 0;
    std::size_t batches = 0;
    for (const auto& batch : loader) {
      opt.zero_grad();
      auto loss = cross_entropy(model(batch.inputs), batch.targets);
      loss.backward();
      opt.step();
      loss_sum += loss.item();
      ++batches;
    }
    world.all_reduce(std::span<double>(&loss_sum, 1), dist::ReduceOp::mean);
    loss_sum /= static_cast<double>(batches);
    state.epoch = epoch;
    if (world.rank() == 0) {
      io::save_checkpoint(state, checkpoint);
      std::printf("epoch %d loss %.4f\n", epoch, loss_sum);
      std::fflush(stdout);
    }
    world.barrier();  // the checkpoint of this epoch is complete
    if (epoch == die_after && world.rank() == 1) std::raise(SIGKILL);
  }
  if (world.rank() == 0) std::printf("finished %d epochs, loss %.4f\n", epochs, loss_sum);
  return 0;
}
