/**
 * Linux capability names for the emperor's `cap` option: uWSGI's names (core/utils.c
 * `uwsgi_cap_list`: the kernel's `CAP_*` constants, lower case, without the prefix), plus
 * the ones added to the kernel since (`block_suspend` .. `checkpoint_restore`). They are
 * also util-linux `setpriv`'s spelling, which applies them. uWSGI accepts a capability's
 * number too; so do we.
 */
import { invalid } from './values.js';
import type { ResolvedOption } from './types.js';

/** Every capability by its number (linux/capability.h), in order. */
export const CAPABILITIES = [
  'chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap',
  'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner',
  'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice',
  'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write', 'audit_control', 'setfcap',
  'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf',
  'checkpoint_restore',
] as const;

/** A capability's name, as `cap` takes it (`setuid`, `net_bind_service`). */
export type CapabilityName = (typeof CAPABILITIES)[number];

/** The kernel's number of a capability (CAP_SETUID is 7): its bit in /proc/PID/status `Cap*` masks. */
export function capabilityNumber(name: CapabilityName): number {
  return CAPABILITIES.indexOf(name);
}

/** The capability with this number, if the kernel defines one. */
export function capabilityName(n: number): CapabilityName | undefined {
  return CAPABILITIES[n];
}

/**
 * `cap = setgid,setuid`: names or numbers separated by commas (spaces allowed), each
 * named once in the result, in the order written. uWSGI logs an unknown name and goes on
 * without it (and refuses an empty list); here an unknown name is an error, since running
 * without a capability the operator asked for fails later and further from the cause.
 * @throws {ConfigValueError} an unknown name or number, or an empty list
 */
export function parseCapabilities(option: ResolvedOption): readonly CapabilityName[] {
  const out: CapabilityName[] = [];
  const items = option.value.split(',').map((item) => item.trim().toLowerCase()).filter((item) => item !== '');
  if (items.length === 0) invalid(option, 'capability names such as setgid,setuid');
  for (const item of items) {
    const bare = item.startsWith('cap_') ? item.slice(4) : item;
    const name = /^\d+$/.test(bare) ? capabilityName(Number(bare)) : CAPABILITIES.find((known) => known === bare);
    if (name === undefined) {
      const near = CAPABILITIES.find((known) => known.replaceAll('_', '') === bare.replaceAll(/[_-]/g, ''));
      invalid(option, 'capability names such as setgid,setuid',
        `unknown capability ${JSON.stringify(item)}${near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`}; known: ${CAPABILITIES.join(', ')}`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
