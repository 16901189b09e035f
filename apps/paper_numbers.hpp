#pragma once
// The paper's reported numbers (MATH.md §11, re-aligned tables), for the report's side-by-side
// columns. Accuracies in %; "-" = no weight decay, "WD" = with weight decay.
#include <array>

namespace wdlab::app::paper {

struct Table1Row {
  const char* dataset;
  const char* network;
  bool bn, aug;
  // SGD -, SGD WD, Adam -, Adam WD, K-FAC-F -, K-FAC-F WD, K-FAC-G -, K-FAC-G WD
  std::array<double, 8> acc;
};
inline constexpr std::array<const char*, 4> kOptimizers{"sgd", "adam", "kfac-f", "kfac-g"};
inline constexpr std::array<const char*, 4> kOptimizerLabels{"SGD", "Adam", "K-FAC-F", "K-FAC-G"};

inline constexpr std::array<Table1Row, 8> kTable1{{
    {"CIFAR-10", "VGG16", false, false, {83.20, 84.87, 83.16, 84.12, 85.58, 89.60, 83.85, 89.81}},
    {"CIFAR-10", "VGG16", true, false, {86.99, 88.85, 88.45, 88.72, 87.97, 89.02, 88.17, 89.77}},
    {"CIFAR-10", "VGG16", true, true, {91.71, 93.39, 92.89, 93.62, 93.12, 93.90, 93.19, 93.80}},
    {"CIFAR-10", "ResNet32", false, false, {85.47, 86.63, 84.43, 87.54, 86.82, 90.22, 85.24, 90.64}},
    {"CIFAR-10", "ResNet32", true, false, {86.13, 90.65, 89.46, 90.61, 89.78, 91.24, 89.94, 90.91}},
    {"CIFAR-10", "ResNet32", true, true, {92.95, 95.14, 93.63, 94.66, 93.80, 95.35, 93.44, 95.04}},
    {"CIFAR-100", "VGG16", true, true, {68.42, 73.31, 69.88, 74.22, 71.05, 73.36, 67.46, 73.57}},
    {"CIFAR-100", "ResNet32", true, true, {73.61, 77.73, 73.60, 77.40, 74.49, 78.01, 73.70, 78.02}},
}};

/// Table 2: ‖J_x‖²_F at the end of training, networks without BN, CIFAR-10.
struct Table2Row {
  const char* network;
  const char* optimizer;  // sgd | kfac-g
  double none, wd;
};
inline constexpr std::array<Table2Row, 4> kTable2{{
    {"VGG16", "sgd", 564, 142},
    {"VGG16", "kfac-g", 498, 51.44},
    {"ResNet32", "sgd", 2765, 1074},
    {"ResNet32", "kfac-g", 2115, 64.16},
}};

/// Table 3: BN + augmentation, batch 128 / 640 / 2000, each - then WD.
struct Table3Row {
  const char* dataset;
  const char* network;
  const char* optimizer;
  std::array<double, 6> acc;
};
inline constexpr std::array<int, 3> kBatches{128, 640, 2000};
inline constexpr std::array<Table3Row, 9> kTable3{{
    {"CIFAR-10", "VGG16", "sgd", {91.71, 93.39, 90.46, 93.09, 88.50, 92.24}},
    {"CIFAR-10", "VGG16", "kfac-f", {93.12, 93.90, 92.93, 93.55, 92.17, 93.31}},
    {"CIFAR-10", "VGG16", "kfac-g", {93.19, 93.80, 92.98, 93.74, 90.78, 93.46}},
    {"CIFAR-10", "ResNet32", "sgd", {92.95, 95.14, 91.68, 94.45, 89.70, 94.68}},
    {"CIFAR-10", "ResNet32", "kfac-f", {93.80, 95.35, 92.30, 94.79, 91.15, 94.43}},
    {"CIFAR-10", "ResNet32", "kfac-g", {93.44, 95.04, 91.80, 94.73, 90.02, 94.85}},
    {"CIFAR-100", "ResNet32", "sgd", {73.61, 77.73, 71.74, 76.67, 65.38, 76.87}},
    {"CIFAR-100", "ResNet32", "kfac-f", {74.49, 78.01, 73.54, 77.34, 71.64, 77.13}},
    {"CIFAR-100", "ResNet32", "kfac-g", {73.70, 78.02, 71.13, 77.40, 65.41, 76.93}},
}};

}  // namespace wdlab::app::paper
