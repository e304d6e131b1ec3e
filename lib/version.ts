/** ztna's version: the one place it is written (`ztna --version` prints it). */
export const VERSION = "0.1.0";
