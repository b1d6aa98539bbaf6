// ssihvctl calibrate (docs/API.md, "Calibration").
#ifndef SSIHV_APPS_SSIHVCTL_CALIBRATE_H_
#define SSIHV_APPS_SSIHVCTL_CALIBRATE_H_

#include "options.h"

namespace ssihv::ctl {

/// Runs the calibration: with options.node, that node's side only (one
/// process per host); without, every node of the config as a local process.
/// Returns the exit status (CtlExit).
int RunCalibrate(const CtlOptions& options);

}  // namespace ssihv::ctl

#endif  // SSIHV_APPS_SSIHVCTL_CALIBRATE_H_
