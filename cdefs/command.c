/* The commands every poll loop runs the same way (command.h). */
#include <string.h>

#include "command.h"

void oms_command_apply(struct oms_core *c, struct oms_command *cmd, uint64_t now_ns)
{
	switch (cmd->op) {
	case OMS_CMD_TICK:
		/* a call with no frames runs the timers due */
		oms_core_process_burst(c, NULL, NULL, 0, now_ns);
		cmd->result = 0;
		break;
	case OMS_CMD_MASS_CANCEL:
		cmd->result = oms_core_mass_cancel(c, cmd->a, cmd->b, now_ns);
		break;
	case OMS_CMD_KILL:
		/* engaging it cancels the open orders it covers */
		cmd->result = oms_core_kill(c, cmd->a, (int)cmd->b, now_ns);
		break;
	case OMS_CMD_JOURNAL_FULL:
		cmd->result = oms_core_set_journal_full(c, (int)cmd->a);
		break;
	case OMS_CMD_SNAPSHOT:
		memcpy(cmd->stats, oms_core_stats(c), sizeof(*cmd->stats));
		cmd->result = oms_core_live_orders(c);
		break;
	case OMS_CMD_SYNC:
		cmd->result = 0;
		break;
	case OMS_CMD_ORDER:
		cmd->result = cmd->a ? oms_core_order_find(c, cmd->a, cmd->id, cmd->order)
				     : oms_core_order_by_ref(c, (uint16_t)cmd->b, (uint32_t)cmd->id,
							     cmd->order);
		break;
	default:
		cmd->result = -1;
	}
}
