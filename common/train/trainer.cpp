#include "common/train/trainer.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/data/transforms.hpp"
#include "common/errors.hpp"
#include "common/io/atomic_file.hpp"
#include "common/train/metrics_log.hpp"
#include "common/train/signals.hpp"

namespace wdlab::train {

namespace fs = std::filesystem;

void TrainerConfig::validate() const {
  if (epochs < 1) throw UsageError("epochs", fmt::format("must be >= 1, got {}", epochs));
  if (batch_size < 2) throw UsageError("batch_size", fmt::format("must be >= 2, got {}", batch_size));
  if (eval_batch_size < 1)
    throw UsageError("eval_batch_size", fmt::format("must be >= 1, got {}", eval_batch_size));
  if (checkpoint_every < 1)
    throw UsageError("checkpoint.every", fmt::format("must be >= 1, got {}", checkpoint_every));
  if (keep_checkpoints < 1)
    throw UsageError("checkpoint.keep", fmt::format("must be >= 1, got {}", keep_checkpoints));
  if (!lr) throw InternalError("TrainerConfig.lr is not set");
  metrics.validate();
}

namespace {

using Clock = std::chrono::steady_clock;

/// Gathers examples `ids` of `d` into contiguous buffers (augmented when asked).
struct BatchBuffer {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
  HostBatch fill(const data::Dataset& d, std::span<const std::uint32_t> ids, Augment aug,
                 std::uint64_t seed, std::int64_t step) {
    const std::size_t sz = d.image_size();
    images.resize(ids.size() * sz);
    labels.resize(ids.size());
    if (aug == Augment::on) {
      data::augment_batch(d, ids, seed, std::uint64_t(step), images);
    } else {
      for (std::size_t i = 0; i < ids.size(); ++i)
        std::copy_n(d.image(ids[i]), sz, images.begin() + std::ptrdiff_t(i * sz));
    }
    for (std::size_t i = 0; i < ids.size(); ++i) labels[i] = d.labels[ids[i]];
    return HostBatch{images, labels, int(ids.size())};
  }
};

class ProgressLine {
 public:
  explicit ProgressLine(Progress p) {
    mode_ = p == Progress::auto_detect ? (::isatty(STDERR_FILENO) ? Progress::terminal : Progress::lines) : p;
  }
  void update(int epoch, int epochs, std::int64_t step, std::int64_t steps, double loss, double acc) {
    if (mode_ == Progress::quiet) return;
    const auto now = Clock::now();
    if (mode_ == Progress::terminal) {
      if (now - last_ < std::chrono::milliseconds(200) && step != steps) return;
      fmt::print(stderr, "\repoch {}/{}  step {}/{}  loss {:.4f}  acc {:.3f}   ", epoch, epochs, step,
                 steps, loss, acc);
      std::fflush(stderr);
    } else {
      if (now - last_ < std::chrono::seconds(30) && step != steps) return;
      fmt::print(stderr, "epoch {}/{} step {}/{} loss {:.4f} acc {:.3f}\n", epoch, epochs, step, steps,
                 loss, acc);
    }
    last_ = now;
  }
  void end_epoch(const std::string& summary) {
    if (mode_ == Progress::quiet) return;
    if (mode_ == Progress::terminal) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "{}\n", summary);
  }

 private:
  Progress mode_;
  Clock::time_point last_{};
};

fs::path checkpoint_path(const fs::path& dir, int epoch) {
  return dir / fmt::format("epoch-{:04d}.safetensors", epoch);
}

/// Where a run stands: `epoch` epochs complete, `position` batches into the next one with the
/// running sums of that partial epoch (a checkpoint taken on a signal).
struct Position {
  int epoch = 0;
  std::int64_t iteration = 0;
  std::int64_t batch = 0;
  double loss_sum = 0;
  std::int64_t correct = 0, seen = 0;
};

void write_checkpoint(Backend& backend, const fs::path& run_dir, const Position& at,
                      const nlohmann::json& meta, int keep) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  io::SafetensorsFile f = backend.state();
  for (const auto& [k, v] : meta.items()) f.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
  f.metadata["epoch"] = std::to_string(at.epoch);
  f.metadata["iteration"] = std::to_string(at.iteration);
  f.metadata["batch"] = std::to_string(at.batch);
  f.metadata["loss_sum"] = fmt::format("{:.17g}", at.loss_sum);
  f.metadata["correct"] = std::to_string(at.correct);
  f.metadata["seen"] = std::to_string(at.seen);
  // A partial epoch sorts after the last complete one and before its own end: "-" < ".".
  const fs::path path = at.batch == 0 ? checkpoint_path(dir, at.epoch)
                                      : dir / fmt::format("epoch-{:04d}-partial-{:09d}.safetensors",
                                                          at.epoch + 1, at.batch);
  io::save(path, f);
  io::write_file_atomic(dir / "latest", path.filename().string() + "\n");
  // Prune the oldest beyond the keep-count (never the one just written).
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i + std::size_t(keep) < all.size(); ++i) fs::remove(all[i]);
}

Position try_resume(Backend& backend, const fs::path& run_dir) {
  const fs::path latest = run_dir / "checkpoints" / "latest";
  if (!fs::exists(latest)) return {};
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  const fs::path path = run_dir / "checkpoints" / name;
  if (name.empty() || !fs::exists(path))
    throw DataError(latest.string(), fmt::format("names '{}', which does not exist", name));
  const io::SafetensorsFile f = io::load(path);
  backend.load_state(f);
  Position r;
  try {
    r.epoch = std::stoi(f.metadata.at("epoch"));
    r.iteration = std::stoll(f.metadata.at("iteration"));
    if (f.metadata.count("batch")) {
      r.batch = std::stoll(f.metadata.at("batch"));
      r.loss_sum = std::stod(f.metadata.at("loss_sum"));
      r.correct = std::stoll(f.metadata.at("correct"));
      r.seen = std::stoll(f.metadata.at("seen"));
    }
  } catch (const std::exception&) {
    throw DataError(path.string(), "metadata lacks a valid 'epoch', 'iteration' or position");
  }
  return r;
}

}  // namespace

EvalStats evaluate(Backend& backend, const data::Dataset& d, int batch_size) {
  EvalStats total;
  BatchBuffer buf;
  std::vector<std::uint32_t> ids;
  for (std::size_t start = 0; start < d.size(); start += std::size_t(batch_size)) {
    const std::size_t n = std::min<std::size_t>(std::size_t(batch_size), d.size() - start);
    ids.resize(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = std::uint32_t(start + i);
    total += backend.evaluate(buf.fill(d, ids, Augment::off, 0, 0));
  }
  return total;
}

RunSummary train(Backend& backend, const Datasets& data, const TrainerConfig& cfg,
                 const fs::path& run_dir, Resume resume, const nlohmann::json& checkpoint_metadata) {
  cfg.validate();
  const std::size_t n_train = data.train.size();
  const std::int64_t per_epoch = std::int64_t(n_train / std::size_t(cfg.batch_size));
  if (per_epoch < 1)
    throw UsageError("batch_size", fmt::format("{} exceeds the training set ({} examples)", cfg.batch_size, n_train));
  io::remove_stale_temporaries(run_dir);
  if (fs::exists(run_dir / "checkpoints")) io::remove_stale_temporaries(run_dir / "checkpoints");

  Position start;
  if (resume == Resume::latest) start = try_resume(backend, run_dir);
  if (start.batch >= per_epoch)
    throw DataError((run_dir / "checkpoints").string(), "the latest checkpoint's position is beyond its epoch");
  const SignalGuard signals;
  // Fault injection for tests: WDLAB_FAULT_SIGTERM_AT=k raises SIGTERM right after step k, so a
  // test can stop a run at a chosen point instead of racing a timer.
  const char* fault = std::getenv("WDLAB_FAULT_SIGTERM_AT");
  const std::int64_t sigterm_at = fault ? std::atoll(fault) : -1;
  MetricsLog log(run_dir);
  log.truncate_after_epoch(start.epoch);

  RunSummary summary;
  summary.epochs_done = start.epoch;
  std::int64_t iteration = start.iteration;
  const auto t0 = Clock::now();
  BatchBuffer buf;
  ProgressLine progress(cfg.progress);

  if (start.epoch == 0 && start.batch == 0 && backend.wants_factor_init()) {
    // One pass over the training set in data order, no augmentation (roger_init).
    std::vector<std::uint32_t> ids(std::size_t(cfg.batch_size));
    for (std::int64_t b = 0; b < per_epoch; ++b) {
      for (int i = 0; i < cfg.batch_size; ++i) ids[i] = std::uint32_t(b * cfg.batch_size + i);
      backend.accumulate_factor_init(buf.fill(data.train, ids, Augment::off, 0, 0), b);
    }
    backend.finish_factor_init();
  }

  for (int epoch = start.epoch + 1; epoch <= cfg.epochs; ++epoch) {
    const auto te = Clock::now();
    const auto order = data::epoch_permutation(n_train, cfg.seed, std::uint64_t(epoch - 1));
    const bool continuing = epoch == start.epoch + 1 && start.batch > 0;
    double loss_sum = continuing ? start.loss_sum : 0;
    std::int64_t correct = continuing ? start.correct : 0, seen = continuing ? start.seen : 0;
    double lr = 0;
    for (std::int64_t b = continuing ? start.batch : 0; b < per_epoch; ++b) {
      const std::span<const std::uint32_t> ids(order.data() + b * cfg.batch_size, std::size_t(cfg.batch_size));
      const HostBatch batch = buf.fill(data.train, ids, cfg.augment, cfg.seed, iteration);
      lr = cfg.lr(iteration, per_epoch);
      const StepStats s = backend.train_step(batch, lr, iteration);
      if (!s.finite)
        throw NumericError(fmt::format("non-finite loss or update at epoch {} iteration {} (loss {})",
                                       epoch, iteration, s.loss));
      if (iteration == sigterm_at) std::raise(SIGTERM);
      ++iteration;
      loss_sum += s.loss * batch.n;
      correct += s.correct;
      seen += batch.n;
      progress.update(epoch, cfg.epochs, b + 1, per_epoch, loss_sum / double(seen), double(correct) / double(seen));
      if (const int sig = signals.pending(); sig != 0 && b + 1 < per_epoch) {
        write_checkpoint(backend, run_dir, Position{epoch - 1, iteration, b + 1, loss_sum, correct, seen},
                         checkpoint_metadata, cfg.keep_checkpoints);
        progress.end_epoch(fmt::format("signal {}: checkpoint written at epoch {} batch {}", sig, epoch, b + 1));
        throw Interrupted{sig};
      }
    }
    apply_norm_transfer(backend, cfg.wn, epoch);  // wn-conv (epoch_metrics.hpp); predictions unchanged
    nlohmann::ordered_json row;
    row["epoch"] = epoch;
    row["iteration"] = iteration;
    row["lr"] = lr;
    row["train_loss"] = loss_sum / double(seen);
    row["train_acc"] = double(correct) / double(seen);
    summary.train = EvalStats{loss_sum, correct, seen};
    if (data.val.size() > 0) {
      summary.val = evaluate(backend, data.val, cfg.eval_batch_size);
      row["val_loss"] = summary.val.loss();
      row["val_acc"] = summary.val.accuracy();
    }
    summary.test = evaluate(backend, data.test, cfg.eval_batch_size);
    row["test_loss"] = summary.test.loss();
    row["test_acc"] = summary.test.accuracy();
    row["epoch_seconds"] = std::chrono::duration<double>(Clock::now() - te).count();
    add_epoch_metrics(backend, data, cfg, lr, epoch, row);  // norm.*, elr.*, ... (measure.hpp)
    log.append(row);
    progress.end_epoch(fmt::format("epoch {}/{}: train loss {:.4f} acc {:.4f} | {}test loss {:.4f} acc {:.4f} | {:.1f} s",
                                   epoch, cfg.epochs, double(row["train_loss"]), double(row["train_acc"]),
                                   data.val.size() ? fmt::format("val acc {:.4f} | ", summary.val.accuracy()) : "",
                                   summary.test.loss(), summary.test.accuracy(), double(row["epoch_seconds"])));
    const int sig = signals.pending();
    if (epoch % cfg.checkpoint_every == 0 || epoch == cfg.epochs || sig != 0)
      write_checkpoint(backend, run_dir, Position{epoch, iteration}, checkpoint_metadata, cfg.keep_checkpoints);
    summary.epochs_done = epoch;
    if (sig != 0 && epoch < cfg.epochs) throw Interrupted{sig};
  }
  summary.iterations = iteration;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

}  // namespace wdlab::train
