// Runs the @nestjs/swagger CLI plugin inside ts-jest (the recipe from the NestJS docs), with the same options
// as nest-cli.json, so the OpenAPI document in tests equals the one `nest build` produces.
const transformer = require('@nestjs/swagger/plugin');
const options = require('../nest-cli.json').compilerOptions.plugins.find((p) => p.name === '@nestjs/swagger').options;

module.exports.name = 'nestjs-swagger-transformer';
module.exports.version = 1;
module.exports.factory = (compiler) => transformer.before(options, compiler.program);
