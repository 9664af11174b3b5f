/**
 * @gatehouse/engine — the decision core of Gatehouse. Pure: data in, values out; no I/O, no
 * `node:` modules, time passed in. The rules it implements are `shared/design/semantics.md`.
 */

export * from './names.js';
export * from './glob.js';
export * from './model.js';
export * from './condition.js';
export * from './compile-domain.js';
export * from './catalog.js';
export * from './membership.js';
export * from './decide.js';
export * from './list.js';
export * from './permissions.js';
export * from './token-mode.js';
export * from './bundle-payload.js';
export * from './source-file.js';
export * from './config-file.js';
export * from './policy-test.js';
