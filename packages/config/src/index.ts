export type * from './types.js';
export * from './errors.js';
export { parseConfigText, readConfigFile, MAX_CONFIG_BYTES, type ReadConfigOptions } from './read.js';
export { configFormatFromPath, isVassalFileName } from './file-name.js';
export { MAGIC_PLACEHOLDERS } from './magic.js';
export { VERSION as EMPEROR_VERSION } from '@emperor/protocol';
export {
  OPTIONS, OPTION_GROUPS, UNSUPPORTED_UWSGI_OPTIONS, findOption, findUnsupportedOption, suggestOptionName,
  type KnownOption, type OptionGroup, type OptionName, type OptionNameOf, type OptionNameWithDefaultOf, type OptionScope, type OptionSpec,
  type OptionType, type OptionUnit, type UnsupportedOption,
} from './options.js';
export { COMMAND_LINE, createOptionReader, type OptionReader } from './option-reader.js';
export type { AppliedOption, CollectedOptions } from './collect.js';
export {
  loadVassalConfig, resolveVassalConfig, loadEmperorConfig, resolveEmperorConfig,
  type LoadVassalConfigOptions, type LoadedConfig, type ResolveConfigOptions, type ResolveVassalConfigOptions,
} from './resolve.js';
export { MIN_NODE_LIMIT_AS_MB, STDIN_SOCKET_FILE } from './vassal-config.js';
export { formatListenAddress, formatSocketAddress } from './values.js';
export { formatWarning } from './warnings.js';
export { generatedValues, renderConfigurationReference, renderLogFormatVariables, renderUwsgiCoverage, replaceGenerated, replaceGeneratedValues } from './reference-docs.js';
export { checkConfigFile, type CheckOptions, type CheckResult, type ConfigProblem } from './check.js';
export { LOG_FORMAT_REQUEST_VARS, LOG_FORMAT_VARIABLES, isLogFormatVariable, parseLogFormat, type LogFormatPart } from './log-format.js';
export {
  DEFAULT_PG_QUERY, PG_KEYWORDS, PG_SCHEMES, PG_SSLMODES, isPgMonitor, maskPgMonitor, parsePgMonitor,
  type PgKeyword, type PgMonitor, type PgMonitorResult,
} from './pg-monitor.js';
export { CAPABILITIES, capabilityName, capabilityNumber, parseCapabilities, type CapabilityName } from './capabilities.js';
