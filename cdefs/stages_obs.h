/* Set-up and tear-down of a core's observability state (cdefs/stages.c). */
#ifndef OMS_STAGES_OBS_H
#define OMS_STAGES_OBS_H

#include "core_internal.h"

int stage_obs_init(struct oms_core *c);
void stage_obs_free(struct oms_core *c);

#endif
