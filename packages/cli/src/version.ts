/** The CLI's version (`wsh version`, `wctl version`). */
export const VERSION = '0.1.0';
